//! upbit-exporter: Upbit's real-time WebSocket feed as Prometheus metrics and an HTTP API.
//!
//! # How a frame travels
//! ```text
//!  Upbit ──ws──▶ ConnectionActor ──FramesReceived──▶ DecoderActor ──FramesDecoded──▶ MetricsActor
//!   (one per    (link, ping, subscribe,            (bytes to typed              (series, latest data,
//!   connection)  batching; supervised)               messages)                   live stream publish)
//!                        ▲                                                          │
//!   SubscriptionManager ─┘ (what to watch: patterns, market list, codes per link)   ▼
//!                                                                   Hub ──▶ /api/v1/stream, /events
//!                                                        (nats.url) NATS sink ──▶ JetStream
//!  actix-web: /metrics, /healthz, /readyz, /api/v1/* (control and data), the live page
//! ```
//!
//! # Layers
//! Each layer imports only from the layers below it (`tests/it/layers.rs` reads this list and
//! fails on any `crate::` path that points up, and on a module missing from it).
//!
//! 0. base: [`text`], [`clock`], [`signal`]: std-only helpers everyone may use.
//! 1. protocol: [`upbit`]: Upbit's wire format, pure (no runtime, no I/O).
//! 2. vocabulary: [`subscription`], [`secret`], [`view`], [`duration`], [`frame_limit`],
//!    [`peer_socket`]: the subscription document and plan, the token secret, the data views,
//!    durations, and the guards on a WebSocket peer (frame bounds, ending a stalled socket).
//! 3. services: [`telemetry`], [`settings`], [`simulator`]: every metric and event, the
//!    configuration, the fake exchange.
//! 4. messages: [`messages`], [`status`]: what actors say to each other and what they report.
//! 5. stream: [`stream`]: the live stream's fan-out.
//! 6. actors: [`actors`], [`nats`]: manager, connection, decoder, metrics; the NATS JetStream
//!    sink fed beside the live stream.
//! 7. http: [`http`]: the HTTP surface.
//! 8. app: [`app`]: builds the actors and the server from settings.
//! 9. entry: [`cli`]: the command line (`main.rs` sits above it).
pub mod actors;
pub mod app;
pub mod cli;
pub mod clock;
pub mod duration;
pub mod frame_limit;
pub mod http;
pub mod messages;
pub mod nats;
pub mod peer_socket;
pub mod secret;
pub mod settings;
pub mod signal;
pub mod simulator;
pub mod status;
pub mod stream;
pub mod subscription;
pub mod telemetry;
pub mod text;
pub mod upbit;
pub mod view;

pub use signal::shutdown_signal;
