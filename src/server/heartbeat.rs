//! The heartbeat that [`QueueDelay`] reads: every [`PERIOD`], the
//! pacemaker thread writes a byte into a loopback connection of each shard,
//! which the shard reads back like a client's request (see
//! [`crate::queue_delay`] for why through I/O, and why from another
//! thread). One probe per I/O path the shard's connections are woken
//! through: the runtime's own sockets ([`Listener::adopt`]), and on io_uring
//! also tokio's, which the gRPC face's connections use.

use std::io::{self, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use super::transport::{EpollListener, Listener, Stream};
use crate::queue_delay::{PROBES, QueueDelay};

/// How often a byte is sent: the measure's resolution, against bounds of
/// tens to hundreds of milliseconds. An idle shard wakes this often.
const PERIOD: Duration = Duration::from_millis(10);

/// The thread that sends every shard's heartbeat bytes. It ends by itself
/// once the server and its shards have let go of it.
#[derive(Debug, Default)]
pub(crate) struct Pacemaker {
    /// Each probe's sending end. Locked by the pacemaker every period and by
    /// a shard when it starts or stops, never on a request's path.
    beats: Mutex<Vec<Beat>>,
}

#[derive(Debug)]
struct Beat {
    delay: Arc<QueueDelay>,
    probe: usize,
    sender: TcpStream,
}

impl Pacemaker {
    /// Starts the pacemaker thread.
    pub(crate) fn start() -> io::Result<Arc<Pacemaker>> {
        let pacemaker = Arc::new(Pacemaker::default());
        let weak = Arc::downgrade(&pacemaker);
        std::thread::Builder::new()
            .name("jwtgate-heartbeat".to_owned())
            .spawn(move || beat(&weak))?;
        Ok(pacemaker)
    }

    fn beats(&self) -> std::sync::MutexGuard<'_, Vec<Beat>> {
        // A panic while sending leaves the list as it was: still usable.
        self.beats.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Every period, a byte for each probe whose last byte has arrived.
fn beat(pacemaker: &Weak<Pacemaker>) {
    loop {
        std::thread::sleep(PERIOD);
        let Some(pacemaker) = pacemaker.upgrade() else {
            return;
        };
        let now = Instant::now();
        pacemaker.beats().retain(|beat| {
            if !beat.delay.send(beat.probe, now) {
                return true;
            }
            // One byte into an empty loopback buffer does not block; one
            // that could not go now goes next period.
            match (&beat.sender).write(&[1]) {
                Ok(1) => true,
                Ok(_) => {
                    beat.delay.unsent(beat.probe);
                    true
                }
                Err(error) if matches!(error.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {
                    beat.delay.unsent(beat.probe);
                    true
                }
                Err(error) => {
                    // A shard that is stopping shut its end first; otherwise
                    // the shard no longer sheds load on this path, and says so.
                    beat.delay.stop(beat.probe);
                    crate::diagnostics::warn(format_args!(
                        "a shard's queue delay is no longer measured (load shedding is off on it): {error}"
                    ));
                    false
                }
            }
        });
    }
}

/// A shard's probes, running; [`Heartbeat::stop`] ends them.
pub(super) struct Heartbeat {
    pacemaker: Arc<Pacemaker>,
    delay: Arc<QueueDelay>,
    senders: Vec<TcpStream>,
    readers: Vec<tokio::task::JoinHandle<()>>,
}

/// A connected loopback pair: the sending end (non-blocking) and the
/// reading end (to be adopted by a runtime).
fn loopback_pair() -> io::Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    let sender = TcpStream::connect(listener.local_addr()?)?;
    let (reader, _) = listener.accept()?;
    sender.set_nodelay(true)?;
    sender.set_nonblocking(true)?;
    Ok((sender, reader))
}

impl Heartbeat {
    /// Starts the probes of a shard whose connections are `L`'s (on the
    /// shard's runtime, inside its `LocalSet`), paced by `pacemaker`.
    pub(super) fn start<L: Listener>(
        pacemaker: &Arc<Pacemaker>,
        delay: &Arc<QueueDelay>,
    ) -> io::Result<Heartbeat> {
        let mut heartbeat = Heartbeat {
            pacemaker: Arc::clone(pacemaker),
            delay: Arc::clone(delay),
            senders: Vec::with_capacity(PROBES),
            readers: Vec::with_capacity(PROBES),
        };
        heartbeat.probe::<L>(0)?;
        // On epoll, tokio's sockets are the runtime's own: one probe measures both.
        if std::any::TypeId::of::<L>() != std::any::TypeId::of::<EpollListener>() {
            heartbeat.probe::<EpollListener>(1)?;
        }
        Ok(heartbeat)
    }

    fn probe<L: Listener>(&mut self, probe: usize) -> io::Result<()> {
        let (sender, reader) = loopback_pair()?;
        let reader = L::adopt(reader)?;
        self.readers.push(tokio::task::spawn_local(read(
            Arc::clone(&self.delay),
            probe,
            reader,
        )));
        self.pacemaker.beats().push(Beat {
            delay: Arc::clone(&self.delay),
            probe,
            sender: sender.try_clone()?,
        });
        self.senders.push(sender);
        Ok(())
    }

    /// Ends the probes: no more bytes, and the reads completed (not
    /// cancelled) by shutting the sending ends down, waited for a second at
    /// most (the shard is ending either way).
    pub(super) async fn stop(mut self) {
        self.pacemaker
            .beats()
            .retain(|beat| !Arc::ptr_eq(&beat.delay, &self.delay));
        for probe in 0..PROBES {
            self.delay.stop(probe);
        }
        for sender in &self.senders {
            let _ = sender.shutdown(Shutdown::Both);
        }
        let readers = std::mem::take(&mut self.readers);
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            for reader in readers {
                let _ = reader.await;
            }
        })
        .await;
    }
}

impl Drop for Heartbeat {
    /// A shard that ends without [`Heartbeat::stop`] (start-up failed) stops
    /// the pacemaker writing to it.
    fn drop(&mut self) {
        self.pacemaker
            .beats()
            .retain(|beat| !Arc::ptr_eq(&beat.delay, &self.delay));
    }
}

/// Reads the bytes back until the sending end is shut down.
async fn read<S: Stream>(delay: Arc<QueueDelay>, probe: usize, reader: S) {
    let mut buffer = Vec::with_capacity(64);
    loop {
        let (result, returned) = reader.read(buffer).await;
        buffer = returned;
        buffer.clear();
        match result {
            Ok(read) if read > 0 => delay.arrived(probe, Instant::now()),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            // Shut down (the shard is ending) or broken: the probe ends for
            // good, so that its byte never counts as a wait that grows forever.
            _ => {
                delay.stop(probe);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::transport::UringListener;

    /// Many connections, each with one short request already waiting: the
    /// shard serves them one after another, yielding between them, and the
    /// heartbeat must see the wait behind them.
    async fn a_queue_of_ready_connections_shows<L: Listener>() -> Duration {
        // Two of these run at once, each with a few hundred sockets.
        super::super::descriptors::raise_limit();
        let pacemaker = Pacemaker::start().unwrap();
        let delay = QueueDelay::new();
        let heartbeat = Heartbeat::start::<L>(&pacemaker, &delay).unwrap();
        let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut clients = Vec::new();
        let mut served = Vec::new();
        // The longest wait a request was served after, as the heartbeat saw it.
        let seen = std::rc::Rc::new(std::cell::Cell::new(Duration::ZERO));
        for _ in 0..400 {
            clients.push(TcpStream::connect(addr).unwrap());
            let (accepted, _) = listener.accept().unwrap();
            let stream = L::adopt(accepted).unwrap();
            let (delay, seen) = (Arc::clone(&delay), std::rc::Rc::clone(&seen));
            served.push(tokio::task::spawn_local(async move {
                let (result, _) = stream.read(Vec::with_capacity(16)).await;
                result.unwrap();
                seen.set(seen.get().max(delay.waited(Instant::now())));
                // A verification's worth of work, without yielding.
                let busy = Instant::now();
                while busy.elapsed() < Duration::from_micros(500) {
                    std::hint::spin_loop();
                }
            }));
        }
        // Every request arrives at once; the queue is 400 x 0.5 ms deep.
        for client in &mut clients {
            client.write_all(b"x").unwrap();
        }
        for task in served {
            task.await.unwrap();
        }
        // Caught up, the shard reads as on time again within a few periods.
        let deadline = Instant::now() + Duration::from_secs(10);
        while delay.waited(Instant::now()) > 5 * PERIOD {
            assert!(Instant::now() < deadline, "the wait never came down");
            tokio::time::sleep(PERIOD).await;
        }
        heartbeat.stop().await;
        assert!(
            pacemaker.beats().is_empty(),
            "a stopped shard is paced no more"
        );
        assert_eq!(
            delay.waited(Instant::now() + Duration::from_secs(1)),
            Duration::ZERO,
            "stopped probes leave nothing waiting"
        );
        seen.get()
    }

    #[test]
    fn the_wait_behind_ready_connections_shows_on_epoll() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let seen = tokio::task::LocalSet::new().block_on(
            &runtime,
            a_queue_of_ready_connections_shows::<EpollListener>(),
        );
        assert!(
            seen >= Duration::from_millis(50),
            "saw {seen:?} of a 200 ms queue"
        );
    }

    #[test]
    fn the_wait_behind_ready_connections_shows_on_io_uring() {
        let Ok(runtime) = tokio_uring::Runtime::new(&crate::server::shard::uring_builder(false))
        else {
            // No io_uring in this sandbox: the shard would run on epoll.
            return;
        };
        let seen = runtime.block_on(a_queue_of_ready_connections_shows::<UringListener>());
        assert!(
            seen >= Duration::from_millis(50),
            "saw {seen:?} of a 200 ms queue"
        );
    }

    /// A probe whose reading end is gone (its connection broken) ends for
    /// good: the pacemaker keeps beating for the others, and the lost
    /// probe's byte never reads as a wait that grows until the shard sheds
    /// everything.
    #[test]
    fn a_broken_probe_never_reads_as_waiting() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        tokio::task::LocalSet::new().block_on(&runtime, async {
            let pacemaker = Pacemaker::start().unwrap();
            let delay = QueueDelay::new();
            let heartbeat = Heartbeat::start::<EpollListener>(&pacemaker, &delay).unwrap();
            for sender in &heartbeat.senders {
                sender.shutdown(Shutdown::Both).unwrap();
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while !heartbeat
                .readers
                .iter()
                .all(tokio::task::JoinHandle::is_finished)
            {
                assert!(Instant::now() < deadline, "the readers never ended");
                tokio::time::sleep(PERIOD).await;
            }
            // Several periods of the pacemaker later, nothing waits.
            tokio::time::sleep(10 * PERIOD).await;
            let much_later = Instant::now() + Duration::from_secs(3600);
            assert_eq!(delay.waited(much_later), Duration::ZERO);
            assert!(!delay.send(0, much_later), "a broken probe sends no more");
            heartbeat.stop().await;
        });
    }
}
