//! Closing a connection without destroying what was last sent on it.
//!
//! hyper owns a connection's socket until the connection ends, then drops it.
//! Closing a socket with unread input (a call the client sent while the
//! server's GOAWAY was on its way) makes the kernel answer with a reset, and
//! the client's kernel then throws away what it had not read yet: answers to
//! checks the server decided, and the GOAWAY that says which calls were
//! never taken. The client sees "broken pipe" instead. So hyper gets the
//! socket on loan: when hyper drops it, it comes back, and the connection
//! sends FIN and reads and discards what the client still sends, briefly and
//! boundedly, until the client closes too (as the HTTP face does).

use std::cell::Cell;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::TcpStream;

/// How long, and how much, a closing connection keeps reading.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1 << 20;
const DISCARD_CHUNK: usize = 16 * 1024;

/// Where a lent socket returns to.
pub(super) type Home = Rc<Cell<Option<TcpStream>>>;

/// A socket lent to hyper; dropping it puts it back in its home.
pub(super) struct Lent {
    /// Always `Some` until the loan ends in `drop`.
    stream: Option<TcpStream>,
    home: Home,
}

impl Lent {
    pub(super) fn new(stream: TcpStream, home: &Home) -> Lent {
        Lent {
            stream: Some(stream),
            home: Rc::clone(home),
        }
    }

    fn stream(&mut self) -> io::Result<Pin<&mut TcpStream>> {
        self.stream
            .as_mut()
            .map(Pin::new)
            .ok_or_else(|| io::ErrorKind::NotConnected.into())
    }
}

impl std::fmt::Debug for Lent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lent")
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        self.home.set(self.stream.take());
    }
}

impl AsyncRead for Lent {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(stream) => stream.poll_read(cx, buf),
            Err(error) => Poll::Ready(Err(error)),
        }
    }
}

impl AsyncWrite for Lent {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().stream() {
            Ok(stream) => stream.poll_write(cx, buf),
            Err(error) => Poll::Ready(Err(error)),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().stream() {
            Ok(stream) => stream.poll_write_vectored(cx, bufs),
            Err(error) => Poll::Ready(Err(error)),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.stream
            .as_ref()
            .is_some_and(TcpStream::is_write_vectored)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(stream) => stream.poll_flush(cx),
            Err(error) => Poll::Ready(Err(error)),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(stream) => stream.poll_shutdown(cx),
            Err(error) => Poll::Ready(Err(error)),
        }
    }
}

/// Sends FIN (hyper has when it ended cleanly, not when it was cut off) and
/// reads until the client closes, for at most `LINGER` (or `bound`, if
/// shorter) and `LINGER_BYTES`.
pub(super) async fn close(mut stream: TcpStream, bound: Duration) {
    if stream.shutdown().await.is_err() {
        return;
    }
    // Allocated only here, at the close, so that it does not weigh on every
    // open connection's task.
    let mut discard = vec![0; DISCARD_CHUNK];
    let _ = tokio::time::timeout(LINGER.min(bound), async {
        let mut discarded = 0;
        while discarded < LINGER_BYTES {
            match stream.read(&mut discard).await {
                Ok(n) if n > 0 => discarded += n,
                _ => return,
            }
        }
    })
    .await;
}
