//! MetricsActor: decoded market messages in, Prometheus series out, and the live stream fed.
//!
//! For each batch the decoder hands over it records every message (`record`) into the series
//! of its (type, code) (`series`: pre-resolved handles for every subscribed pair, so the hot
//! path looks up the code and its pair and hashes no labels), keeps the latest message of each
//! kind per code for the data API, and publishes the recorded messages to the live stream. It
//! also follows the subscription (series created at zero for added pairs, removed for dropped
//! ones: `/metrics` never grows on input), the market list (`market_events`) and answers the
//! data API's queries. The market-structure figures of an orderbook (mid, spread, imbalance,
//! depth bands) are computed in `figures` (pure, allocation-free) and written through the
//! per-code handles of `structure`, which also holds the latest candle's series.
//!
//! **Not supervised**, unlike the connection: nothing in it can fail and it never stops itself.
//! It does no I/O; a message it cannot place (an unsubscribed pair) is counted and skipped, and
//! every other step is infallible. An actix `Supervisor` restarts an actor only when it stops,
//! which this one does only when the system shuts down; a panic in a handler is not such a stop
//! (the actor's task ends, a supervisor around it with it). And a restart would rebuild nothing:
//! the supervisor keeps the same struct, so the series and the latest data would carry on as
//! they were, with only a new mailbox.

use actix::{Actor, Context, Handler};
use prometheus::local::LocalHistogram;

use super::queue::StageQueue;
use crate::clock::unix_seconds;
use crate::messages::{
    FramesDecoded, GetLastMessageTimes, GetMarket, GetMarkets, LinkChanged, MarketListFetched,
    MarketView, SubscriptionChanged,
};
use crate::stream::Publisher;
use crate::telemetry::events::MessagesDropped;
use crate::telemetry::{LogThrottle, Metrics};
use crate::upbit::Subscription;
use crate::view::LatestMarket;
use series::Series;

mod figures;
mod market_events;
mod record;
mod series;
mod structure;

pub struct MetricsActor {
    metrics: Metrics,
    /// Every series written, with the latest data of each subscribed code.
    series: Series,
    /// Messages waiting for this actor (released here).
    inbound: StageQueue,
    drop_log: LogThrottle,
    /// The live stream's fan-out: every recorded message and link event, in order.
    stream: Publisher,
    /// `upbit_pipeline_latency_seconds`, written once per batch.
    latency: LocalHistogram,
}

impl MetricsActor {
    pub fn new(metrics: Metrics, subscription: Subscription, inbound: StageQueue) -> Self {
        Self {
            series: Series::new(metrics.clone(), subscription),
            latency: metrics.pipeline_latency.local(),
            metrics,
            inbound,
            drop_log: LogThrottle::new(std::time::Duration::from_secs(10)),
            stream: Publisher::disabled(),
        }
    }

    /// Hands every recorded message and every link event to the live stream as well.
    pub fn with_stream(mut self, stream: Publisher) -> Self {
        self.stream = stream;
        self
    }

    /// Exports the market-structure series `settings` asks for (before any data arrives).
    pub fn with_figures(mut self, settings: &crate::settings::MetricsSettings) -> Self {
        self.series.configure(
            settings.depth_bands_bps.clone(),
            structure::CandleFields::from_names(&settings.candle_fields),
        );
        self
    }

    /// The latest data of one code, decoded, if subscribed.
    pub fn latest(&self, code: &str) -> Option<LatestMarket> {
        self.series.latest(code)
    }
}

impl Actor for MetricsActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Bounded in messages by the stage queue; envelopes hold at least one message each.
        ctx.set_mailbox_capacity(self.inbound.capacity());
    }
}

impl Handler<FramesDecoded> for MetricsActor {
    type Result = ();

    fn handle(&mut self, batch: FramesDecoded, _: &mut Self::Context) {
        let received_unix = unix_seconds(batch.received_at);
        let count = batch.messages.len();
        let (mut unsubscribed, mut frames) = (0, 0);
        let mut live = Vec::new();
        for message in &batch.messages {
            if let Some(bytes) = message.frame_bytes {
                self.series.frame_size(message.brief.data_type, bytes);
                frames += 1;
            }
            if !self
                .series
                .record(message, batch.received_at, received_unix)
            {
                unsubscribed += 1;
                continue;
            }
            // Passed on only when some consumer wants the type: as its JSON for the consumers
            // (encoded when first sent), encoded here for a sink (decoded in full by the decoder,
            // or here when the sink joined in between).
            live.extend(match &message.full {
                Some(full) => self.stream.encode(full, batch.received_at),
                None => self.stream.encode_json(
                    message.brief.data_type,
                    &message.brief.code,
                    &message.json,
                    batch.received_at,
                ),
            });
        }
        self.stream.publish(&live);
        self.inbound.release(count);
        if unsubscribed > 0 {
            // Messages for pairs no longer (or not yet) subscribed: expected briefly around a
            // subscription change; counted, never turned into new series.
            let log = self.drop_log.allow();
            MessagesDropped {
                stage: "metrics",
                reason: "unsubscribed",
                count: unsubscribed,
                log,
            }
            .emit(&self.metrics);
        }
        // One observation per frame: every frame of a batch was read and finished together.
        // Observed locally and written once, like the size and delay histograms.
        let latency = batch.read_at.elapsed().as_secs_f64();
        for _ in 0..frames {
            self.latency.observe(latency);
        }
        self.latency.flush();
        self.series.flush();
    }
}

impl Handler<LinkChanged> for MetricsActor {
    type Result = ();

    fn handle(&mut self, event: LinkChanged, _: &mut Self::Context) {
        self.stream.link_changed(&event);
    }
}

impl Handler<SubscriptionChanged> for MetricsActor {
    type Result = ();

    fn handle(&mut self, change: SubscriptionChanged, _: &mut Self::Context) {
        self.series.subscribe(change.subscription);
    }
}

impl Handler<MarketListFetched> for MetricsActor {
    type Result = ();

    fn handle(&mut self, fetched: MarketListFetched, _: &mut Self::Context) {
        self.series
            .set_market_list(fetched.markets, unix_seconds(std::time::SystemTime::now()));
    }
}

impl Handler<GetMarkets> for MetricsActor {
    type Result = actix::MessageResult<GetMarkets>;

    fn handle(&mut self, _: GetMarkets, _: &mut Self::Context) -> Self::Result {
        actix::MessageResult(self.series.markets())
    }
}

impl Handler<GetMarket> for MetricsActor {
    type Result = Option<MarketView>;

    fn handle(&mut self, query: GetMarket, _: &mut Self::Context) -> Self::Result {
        Some(MarketView {
            latest: self.latest(&query.code)?,
            listing: self.series.listing(&query.code).cloned(),
        })
    }
}

impl Handler<GetLastMessageTimes> for MetricsActor {
    type Result = actix::MessageResult<GetLastMessageTimes>;

    fn handle(&mut self, _: GetLastMessageTimes, _: &mut Self::Context) -> Self::Result {
        actix::MessageResult(self.series.last_message_times())
    }
}
