//! The firehose: after the snapshots, pre-encoded frames rotating over the subscribed pairs,
//! written as fast as the socket takes them or paced at `firehose_rate`, each one counted.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::rounds::Round;
use super::Connection;
use crate::simulator::request::base_code;
use crate::upbit::types::StreamType;

/// Frames the firehose writes per turn of the event loop.
const FIREHOSE_BATCH: usize = 256;

/// Pre-encoded frames, rotating over the subscribed pairs.
pub(super) struct Firehose {
    frames: Vec<(Bytes, String, String)>,
    next: usize,
    sent: u64,
    started: Instant,
}

impl Connection {
    pub(super) fn build_firehose(&self) -> Firehose {
        let mut frames = Vec::new();
        if let Some(active) = &self.active {
            let simple = self.format.is_simple();
            for round in 0..64 {
                for t in active.types.iter().filter(|t| !t.only_snapshot) {
                    for code in &t.codes {
                        let body = self
                            .encode(t, code, StreamType::Realtime, simple, Round::Firehose)
                            .concat();
                        let body = if self.format.is_list() {
                            format!("[{body}]")
                        } else {
                            body
                        };
                        frames.push((
                            Bytes::from(body),
                            t.data_type.as_str().to_owned(),
                            base_code(code).to_owned(),
                        ));
                    }
                }
                if frames.len() >= 64 && round > 0 {
                    break;
                }
            }
        }
        Firehose {
            frames,
            next: 0,
            sent: 0,
            started: Instant::now(),
        }
    }

    /// Writes up to `FIREHOSE_BATCH` pre-encoded frames, counting each.
    pub(super) async fn firehose_batch(&mut self) -> Result<(), actix_ws::Closed> {
        let limit = self.shared.config.firehose_frames.unwrap_or(u64::MAX);
        let Some(hose) = self.firehose.as_mut() else {
            return Ok(());
        };
        if hose.frames.is_empty() || hose.sent >= limit {
            self.firehose = None;
            return Ok(());
        }
        let mut n = (FIREHOSE_BATCH as u64).min(limit - hose.sent);
        if let Some(rate) = self.shared.config.firehose_rate {
            // Send what is due by now; when nothing is, wait for the next frame's time (the
            // timer's millisecond granularity makes small bursts at high rates).
            let elapsed = hose.started.elapsed().as_secs_f64();
            let due = (elapsed * rate) as u64;
            if due <= hose.sent {
                let next = Duration::from_secs_f64((hose.sent + 1) as f64 / rate - elapsed);
                actix_rt::time::sleep(next).await;
                return Ok(());
            }
            n = n.min(due - hose.sent);
        }
        let n = n as usize;
        let mut counts: Vec<(usize, u64)> = Vec::new();
        let mut bytes = 0u64;
        let mut result = Ok(());
        for _ in 0..n {
            let index = hose.next;
            let frame = hose.frames[index].0.clone();
            let size = frame.len() as u64;
            if let Err(closed) = self.session.binary(frame).await {
                result = Err(closed);
                break;
            }
            hose.next = (index + 1) % hose.frames.len();
            hose.sent += 1;
            bytes += size;
            match counts.iter_mut().find(|(i, _)| *i == index) {
                Some((_, c)) => *c += 1,
                None => counts.push((index, 1)),
            }
        }
        let mut stats = self.shared.stats();
        let mut frames = 0;
        for (index, count) in counts {
            let (_, type_name, code) = &hose.frames[index];
            *stats
                .sent
                .entry(type_name.clone())
                .or_default()
                .entry(code.clone())
                .or_default() += count;
            frames += count;
        }
        stats.frames_sent += frames;
        stats.bytes_sent += bytes;
        *stats
            .frames_by_format
            .entry(self.format.as_str().to_owned())
            .or_default() += frames;
        result
    }
}
