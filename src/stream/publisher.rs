//! The pipeline's side of the live stream: what the metrics actor holds.
//!
//! It passes a market message on only when some consumer may want its type (nothing at all while
//! nobody listens), as its JSON from Upbit, encoded when a consumer first sends it (see
//! [`event`](super::event)); hands each batch to the hub; and turns link events into stream
//! events, in order with the batches around them. A disabled stream is a publisher without a hub.
//!
//! A sink ([`EventSink`], e.g. NATS) takes every batch beside the hub: with one attached, every
//! market message is decoded in full and encoded on the pipeline, and carries its deduplication
//! id.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

use super::event::Event;
use super::hub::Hub;
use super::sink::EventSink;
use crate::messages::LinkChanged;
use crate::upbit::brief::MarketCode;
use crate::upbit::decode::decode_as;
use crate::upbit::{DataType, Message};

/// What the pipeline holds: a hub, or nothing when the stream is disabled.
#[derive(Clone, Default)]
pub struct Publisher {
    hub: Option<Hub>,
    sink: Option<Arc<dyn EventSink>>,
}

impl Publisher {
    pub fn new(hub: Hub) -> Self {
        Self {
            hub: Some(hub),
            sink: None,
        }
    }

    /// Hands every batch and link event to `sink` as well.
    pub fn with_sink(mut self, sink: Arc<dyn EventSink>) -> Self {
        self.sink = Some(sink);
        self
    }

    /// Publishes nothing.
    pub fn disabled() -> Self {
        Self::default()
    }

    /// Whether every market message is to be encoded on the pipeline (a sink takes them all,
    /// with their ids): the decoder then decodes each in full at once, for
    /// [`encode`](Self::encode). The hub's consumers alone need nothing decoded there.
    pub fn wants_in_full(&self) -> bool {
        self.sink.is_some()
    }

    /// Encodes a market message when some consumer may want its type; `None` (and no work)
    /// otherwise.
    pub fn encode(&self, message: &Message, received_at: SystemTime) -> Option<Event> {
        if self.sink.is_some() {
            let mut event = Event::market(message, received_at)?;
            event.id = super::msg_id::message_id(message).map(Arc::from);
            return Some(event);
        }
        let hub = self.hub.as_ref()?;
        let data_type = message.data_type()?;
        if !hub.wants(data_type) {
            return None;
        }
        Event::market(message, received_at)
    }

    /// Like [`encode`](Self::encode), for a market message of `data_type` and `code` given as
    /// its JSON object: for the hub's consumers alone, passed on as that JSON and encoded when
    /// first sent; with a sink, decoded and encoded here. Nothing at all while nobody wants it.
    pub fn encode_json(
        &self,
        data_type: DataType,
        code: &MarketCode,
        json: &[u8],
        received_at: SystemTime,
    ) -> Option<Event> {
        if self.sink.is_some() {
            return self.encode(&decode_as(data_type, json).ok()?, received_at);
        }
        self.hub.as_ref().filter(|hub| hub.wants(data_type))?;
        // A copy, not a slice of the frame: a slice would hold the whole socket read buffer it
        // came in for as long as the value waits in a queue (a slow consumer's stale markets).
        Some(Event::market_json(
            data_type,
            code.as_str(),
            Bytes::copy_from_slice(json),
            received_at,
        ))
    }

    /// Fans a batch out.
    pub fn publish(&self, events: &[Event]) {
        if let Some(hub) = &self.hub {
            hub.publish(events);
        }
        if let (Some(sink), false) = (&self.sink, events.is_empty()) {
            sink.publish(events);
        }
    }

    /// Fans a link event out, in order with the batches around it.
    pub fn link_changed(&self, event: &LinkChanged) {
        if self.hub.is_none() && self.sink.is_none() {
            return;
        }
        self.publish(&[Event::link(&event.change, event.at, event.connection)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::LinkChange;
    use crate::stream::{Filter, Next, Transport};
    use crate::telemetry::metrics::StreamMetrics;
    use crate::upbit::model::Trade;
    use crate::upbit::types::Side;

    fn hub() -> Hub {
        let metrics = StreamMetrics::register(&prometheus::Registry::new()).unwrap();
        Hub::new(10, 10, metrics)
    }

    fn trade() -> Message {
        Message::Trade(Trade::bare("KRW-BTC", 1.0, 1.0, Side::Ask))
    }

    fn connected() -> LinkChanged {
        LinkChanged {
            connection: 0,
            change: LinkChange::Connected,
            at: SystemTime::now(),
        }
    }

    #[test]
    fn a_disabled_publisher_encodes_nothing_and_publishing_is_harmless() {
        let publisher = Publisher::disabled();
        assert!(publisher.encode(&trade(), SystemTime::now()).is_none());
        publisher.publish(&[]);
        publisher.link_changed(&connected());
    }

    #[test]
    fn only_types_some_consumer_wants_are_encoded() {
        let hub = hub();
        let publisher = Publisher::new(hub.clone());
        let tickers = hub
            .join(
                Transport::Sse,
                Filter::parse(Some("ticker"), None, 10).unwrap(),
                "a".into(),
            )
            .unwrap();
        assert!(
            publisher.encode(&trade(), SystemTime::now()).is_none(),
            "nobody wants trades"
        );
        let trades = hub
            .join(
                Transport::Sse,
                Filter::parse(Some("trade"), None, 10).unwrap(),
                "b".into(),
            )
            .unwrap();
        let event = publisher.encode(&trade(), SystemTime::now());
        assert!(event.is_some_and(|e| e.encoded.name == "trade"));
        drop(trades);
        assert!(
            publisher.encode(&trade(), SystemTime::now()).is_none(),
            "the interest follows the consumers who left"
        );
        drop(tickers);
    }

    /// Collects what a sink receives.
    #[derive(Default)]
    struct Collect(parking_lot::Mutex<Vec<Event>>);

    impl EventSink for Collect {
        fn publish(&self, events: &[Event]) {
            self.0.lock().extend_from_slice(events);
        }
    }

    #[test]
    fn a_sink_gets_every_message_with_its_id_even_when_no_consumer_listens() {
        let hub = hub();
        let sink = Arc::new(Collect::default());
        let publisher = Publisher::new(hub).with_sink(sink.clone());
        let event = publisher
            .encode(&trade(), SystemTime::now())
            .expect("encoded");
        assert!(event
            .id
            .as_deref()
            .is_some_and(|id| id.starts_with("trade:KRW-BTC:")));
        publisher.publish(std::slice::from_ref(&event));
        publisher.link_changed(&connected());
        let got = sink.0.lock();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].encoded, event.encoded);
        assert_eq!(got[1].encoded.name, "link");
        assert_eq!(got[1].id, None);
        // The decoder asks whether to decode in full; with a sink, every type.
        assert!(publisher.wants_in_full());
        // A message that travels as its JSON (decoded in full here) gets its id too.
        let frame = include_bytes!("../../tests/fixtures/upbit/trade_default_1.json");
        let from_json = publisher
            .encode_json(
                DataType::Trade,
                &MarketCode::new("KRW-BTC"),
                frame,
                SystemTime::now(),
            )
            .expect("encoded from JSON");
        assert!(from_json
            .id
            .as_deref()
            .is_some_and(|id| id.starts_with("trade:KRW-BTC:")));
        let alone = Publisher::disabled().with_sink(sink.clone());
        assert!(
            alone.encode(&trade(), SystemTime::now()).is_some(),
            "a sink without a hub"
        );
    }

    #[test]
    fn a_link_event_reaches_every_consumer_and_greets_the_next_one() {
        let hub = hub();
        let publisher = Publisher::new(hub.clone());
        let trades = hub
            .join(
                Transport::Sse,
                Filter::parse(Some("trade"), None, 10).unwrap(),
                "a".into(),
            )
            .unwrap();
        publisher.link_changed(&connected());
        let later = hub
            .join(Transport::WebSocket, Filter::everything(), "b".into())
            .unwrap();
        for (handle, waiting) in [(&trades, 2), (&later, 1)] {
            assert_eq!(handle.consumer().queued(), waiting);
            let mut last = None;
            let waker = futures_util::task::noop_waker();
            let mut cx = std::task::Context::from_waker(&waker);
            while let std::task::Poll::Ready(Next::Message(m)) =
                handle.consumer().poll_next(&mut cx)
            {
                last = Some(m);
            }
            let last = last.expect("a link event");
            assert_eq!(last.name, "link");
            assert!(last.json().contains("connected"), "{}", last.json());
        }
    }
}
