//! `grpc.health.v1.Health` for the gRPC face: `SERVING` exactly when the
//! admin port's `/readyz` says ready (every listener accepting, every token
//! configuration holding keys, no shutdown begun), `NOT_SERVING` otherwise,
//! so that Envoy's gRPC health checks take a draining or keyless instance
//! out of its cluster.
//!
//! The service name is `""` (the server) or
//! `envoy.service.auth.v3.Authorization`; any other is `NOT_FOUND` (`Check`)
//! or `SERVICE_UNKNOWN` (`Watch`), as the health protocol says.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio_stream::Stream;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_server::Health;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use crate::snapshot::SharedSnapshot;
use crate::status::Status;

/// The services this health endpoint answers for.
const SERVICES: [&str; 2] = ["", "envoy.service.auth.v3.Authorization"];

/// How often a `Watch` looks at the state again.
const WATCH_EVERY: Duration = Duration::from_millis(250);

/// What readiness is read from (shared by every shard).
#[derive(Debug, Clone)]
pub(crate) struct Readiness {
    pub(crate) status: Arc<Status>,
    pub(crate) snapshot: SharedSnapshot,
}

impl Readiness {
    fn serving(&self, service: &str) -> ServingStatus {
        if !SERVICES.contains(&service) {
            return ServingStatus::ServiceUnknown;
        }
        let ready = self.status.listening()
            && !self.status.draining()
            && self.snapshot.load().keys_loaded();
        if ready {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        }
    }
}

fn response(status: ServingStatus) -> HealthCheckResponse {
    HealthCheckResponse {
        status: status as i32,
    }
}

#[tonic::async_trait]
impl Health for Readiness {
    async fn check(
        &self,
        request: tonic::Request<HealthCheckRequest>,
    ) -> Result<tonic::Response<HealthCheckResponse>, tonic::Status> {
        match self.serving(&request.get_ref().service) {
            ServingStatus::ServiceUnknown => Err(tonic::Status::not_found("unknown service")),
            status => Ok(tonic::Response::new(response(status))),
        }
    }

    type WatchStream = Watch;

    async fn watch(
        &self,
        request: tonic::Request<HealthCheckRequest>,
    ) -> Result<tonic::Response<Watch>, tonic::Status> {
        let mut ticks = tokio::time::interval(WATCH_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ok(tonic::Response::new(Watch {
            readiness: self.clone(),
            service: request.into_inner().service,
            ticks,
            last: None,
            ended: false,
        }))
    }
}

/// A `Watch` stream: the state now, then each change. It ends once the
/// server drains (after saying `NOT_SERVING`), so that a watching client
/// never holds a draining connection open.
#[derive(Debug)]
pub(crate) struct Watch {
    readiness: Readiness,
    service: String,
    ticks: tokio::time::Interval,
    last: Option<ServingStatus>,
    ended: bool,
}

impl Stream for Watch {
    type Item = Result<HealthCheckResponse, tonic::Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if self.ended {
                return Poll::Ready(None);
            }
            if self.ticks.poll_tick(cx).is_pending() {
                return Poll::Pending;
            }
            let now = self.readiness.serving(&self.service);
            self.ended = self.readiness.status.draining();
            if self.last != Some(now) {
                self.last = Some(now);
                return Poll::Ready(Some(Ok(response(now))));
            }
        }
    }
}
