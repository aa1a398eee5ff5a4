//! The admin listener's answers, separate from the data port so that health
//! checks and (later) metrics never compete with, or leak into, check traffic.
//!
//! `GET /healthz`: `200 ok` while serving, `503 draining` once a shutdown has
//! begun, so a load balancer stops sending before the listeners close.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::http::response::write_simple;
use crate::http::{BodyPolicy, Framing, RequestHead, Service};

/// The admin endpoints.
#[derive(Debug, Clone)]
pub struct Admin {
    draining: Arc<AtomicBool>,
}

impl Admin {
    /// Answers health checks; `draining` is raised when shutdown begins.
    pub fn new(draining: Arc<AtomicBool>) -> Admin {
        Admin { draining }
    }
}

impl Service for Admin {
    fn body_policy(&self, _head: &RequestHead<'_, '_>) -> BodyPolicy {
        BodyPolicy::Discard { max: 0 }
    }

    fn respond(
        &mut self,
        head: &RequestHead<'_, '_>,
        _body: &[u8],
        framing: Framing,
        out: &mut Vec<u8>,
    ) {
        let path = head.path.split('?').next().unwrap_or_default();
        match (head.method, path) {
            ("GET", "/healthz") if self.draining.load(Ordering::Relaxed) => {
                write_simple(out, 503, "text/plain", b"", b"draining\n", framing);
            }
            ("GET", "/healthz") => {
                write_simple(out, 200, "text/plain", b"", b"ok\n", framing);
            }
            (_, "/healthz") => {
                write_simple(
                    out,
                    405,
                    "text/plain",
                    b"allow: GET\r\n",
                    b"use GET\n",
                    framing,
                );
            }
            _ => write_simple(out, 404, "text/plain", b"", b"not found\n", framing),
        }
    }
}
