//! The two I/O runtimes behind one small interface, so that the connection loop
//! is written once. Together with `shard.rs` (which starts a runtime per
//! shard), this is the only file that names tokio-uring or tokio's sockets:
//! moving to another io_uring runtime is a change here.
//!
//! Buffers are owned and passed by value into each operation and handed back
//! with its result, as io_uring requires: the kernel writes into the buffer
//! while the operation is in flight. A read appends to the `Vec`'s spare
//! capacity and advances its length; it never reallocates.
//!
//! Operations are never cancelled by dropping them. To cut a read or write
//! short (a timeout, a drain) the shard calls [`Stream::shutdown`] on the
//! socket, which completes the pending operation, and the connection then
//! awaits it and gets its buffer back.

use std::io;
use std::net::{IpAddr, Shutdown};

use tokio_uring::buf::BoundedBuf as _;

/// A connected socket of either runtime.
pub(crate) trait Stream: 'static {
    /// Reads once into `buf`'s spare capacity (which must not be empty).
    async fn read(&self, buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>);
    /// Writes all of `buf`.
    async fn write_all(&self, buf: Vec<u8>) -> (io::Result<()>, Vec<u8>);
    /// Shuts down one or both directions; pending operations complete.
    fn shutdown(&self, how: Shutdown) -> io::Result<()>;
}

/// A listening socket of either runtime.
pub(crate) trait Listener: Sized + 'static {
    /// The connection type it yields.
    type Stream: Stream;
    /// Takes over a bound, listening, non-blocking std socket. Must be called
    /// inside the runtime.
    fn from_std(listener: std::net::TcpListener) -> io::Result<Self>;
    /// Accepts one connection, with `TCP_NODELAY` set (responses are complete
    /// messages and must not wait for an ACK), and its peer's address.
    async fn accept(&self) -> io::Result<(Self::Stream, IpAddr)>;
    /// Takes over a connection accepted on the std socket (the drain takes
    /// the listener's backlog that way), with `TCP_NODELAY` set. Must be
    /// called inside the runtime.
    fn adopt(stream: std::net::TcpStream) -> io::Result<Self::Stream>;
}

/// io_uring sockets (tokio-uring).
pub(crate) struct UringListener(tokio_uring::net::TcpListener);

impl Listener for UringListener {
    type Stream = tokio_uring::net::TcpStream;

    fn from_std(listener: std::net::TcpListener) -> io::Result<Self> {
        Ok(UringListener(tokio_uring::net::TcpListener::from_std(
            listener,
        )))
    }

    async fn accept(&self) -> io::Result<(Self::Stream, IpAddr)> {
        let (stream, peer) = self.0.accept().await?;
        stream.set_nodelay(true)?;
        Ok((stream, peer.ip()))
    }

    fn adopt(stream: std::net::TcpStream) -> io::Result<Self::Stream> {
        stream.set_nodelay(true)?;
        Ok(tokio_uring::net::TcpStream::from_std(stream))
    }
}

impl Stream for tokio_uring::net::TcpStream {
    async fn read(&self, buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        let filled = buf.len();
        let capacity = buf.capacity();
        let (result, slice) =
            tokio_uring::net::TcpStream::read(self, buf.slice(filled..capacity)).await;
        (result, slice.into_inner())
    }

    async fn write_all(&self, buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        tokio_uring::net::TcpStream::write_all(self, buf).await
    }

    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        tokio_uring::net::TcpStream::shutdown(self, how)
    }
}

/// epoll sockets (tokio), for kernels and sandboxes without io_uring.
pub(crate) struct EpollListener(tokio::net::TcpListener);

impl Listener for EpollListener {
    type Stream = tokio::net::TcpStream;

    fn from_std(listener: std::net::TcpListener) -> io::Result<Self> {
        tokio::net::TcpListener::from_std(listener).map(EpollListener)
    }

    async fn accept(&self) -> io::Result<(Self::Stream, IpAddr)> {
        let (stream, peer) = self.0.accept().await?;
        stream.set_nodelay(true)?;
        Ok((stream, peer.ip()))
    }

    fn adopt(stream: std::net::TcpStream) -> io::Result<Self::Stream> {
        stream.set_nodelay(true)?;
        stream.set_nonblocking(true)?;
        tokio::net::TcpStream::from_std(stream)
    }
}

impl Stream for tokio::net::TcpStream {
    async fn read(&self, mut buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        loop {
            if let Err(error) = self.readable().await {
                return (Err(error), buf);
            }
            match self.try_read_buf(&mut buf) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                result => return (result, buf),
            }
        }
    }

    async fn write_all(&self, buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        let mut written = 0;
        while let Some(rest) = buf.get(written..).filter(|rest| !rest.is_empty()) {
            if let Err(error) = self.writable().await {
                return (Err(error), buf);
            }
            match self.try_write(rest) {
                Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), buf),
                Ok(n) => written += n,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => return (Err(error), buf),
            }
        }
        (Ok(()), buf)
    }

    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        socket2::SockRef::from(self).shutdown(how)
    }
}
