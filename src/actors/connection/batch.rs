//! The data frames of one socket read: whole frames and reassembled fragments are collected as
//! they are read, the first real data resets the backoff, and the lot goes to the decoder stage
//! as one batch when the read is handled. What the stage has no room for is dropped and counted
//! (`upbit_dropped_messages_total{stage="decoder"}`): this reader never stalls.

use std::time::{Instant, SystemTime};

use actix_http::ws::Item;
use bytes::Bytes;

use super::fragments::Reassembled;
use super::ConnectionActor;
use crate::messages::FramesReceived;
use crate::telemetry::events::DecodeFailed;
use crate::upbit::DecodeError;

impl ConnectionActor {
    /// Collects one data frame for this read's batch.
    pub(super) fn on_data(&mut self, payload: Bytes) {
        if !self.link.data_flowed && !payload.starts_with(b"{\"error\"") {
            self.link.data_flowed = true;
            self.backoff.reset();
            self.bans = 0;
            self.status.update(|s| s.consecutive_failures = 0);
        }
        self.link.pending.push(payload);
    }

    /// Collects a fragment; a completed message joins the batch, an oversized one is counted as
    /// a decode error (`oversized`) and skipped.
    pub(super) fn on_continuation(&mut self, item: Item) {
        match self.link.fragments.push(item, self.config.max_frame_bytes) {
            Reassembled::Pending => {}
            Reassembled::Complete(message) => self.on_data(message),
            Reassembled::Oversized { size, held } => {
                let error = DecodeError::Oversized {
                    size,
                    limit: self.config.max_frame_bytes,
                };
                let log = self.fragment_log.allow();
                DecodeFailed {
                    error: &error,
                    payload: &held,
                    log,
                }
                .emit(&self.metrics);
            }
        }
    }

    /// Hands the data frames of this read to the decoder stage.
    pub(super) fn flush_frames(&mut self) {
        if self.link.pending.is_empty() {
            return;
        }
        let payloads = std::mem::take(&mut self.link.pending);
        let metrics = &self.metrics;
        metrics.received_frames.inc_by(payloads.len() as u64);
        metrics
            .received_bytes
            .inc_by(payloads.iter().map(|p| p.len() as u64).sum());
        let connection = self.config.index;
        let wrap = |payloads| FramesReceived {
            connection,
            payloads,
            received_at: SystemTime::now(),
            read_at: Instant::now(),
        };
        self.decoder.hand_over(payloads, wrap, metrics);
    }
}
