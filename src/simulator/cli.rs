//! `upbit-exporter simulate`: the simulator from the command line.

use std::net::SocketAddr;
use std::time::Duration;

use super::{Fault, Simulator, SimulatorConfig, SimulatorHandle};
use crate::duration::parse_duration;

/// Options of `upbit-exporter simulate`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, default_value = "127.0.0.1:9944")]
    pub listen: SocketAddr,
    /// Seed of the market model; the same seed gives the same prices.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Realtime messages per subscribed (type, code): `10/s`, `30/m`, or per second as a number.
    #[arg(long, default_value = "1/s", value_parser = parse_rate)]
    pub rate: f64,
    /// Market codes, comma-separated, instead of the bundled 2021 list of 294.
    #[arg(long, value_delimiter = ',')]
    pub markets: Option<Vec<String>>,
    /// Serve a regional exchange's markets: sg (SGD), id (IDR), th (THB); kr (default) serves
    /// the bundled Korean list. --markets wins.
    #[arg(long, default_value = "kr", value_parser = ["kr", "sg", "id", "th"])]
    pub region: String,
    /// After the snapshots, write pre-encoded frames as fast as the socket takes them.
    #[arg(long)]
    pub firehose: bool,
    /// Stop the firehose after this many frames per connection.
    #[arg(long)]
    pub firehose_frames: Option<u64>,
    /// Pace the firehose: frames per connection, `150000/s` (default: as fast as the socket takes).
    #[arg(long, value_parser = parse_frame_rate)]
    pub firehose_rate: Option<f64>,
    /// Close connections that sent nothing for this long.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// Upgrade attempts per second before HTTP 429 (0 disables the gate).
    #[arg(long, default_value_t = 5)]
    pub connect_limit: u32,
    /// Drop every connection abruptly on this period, e.g. `2s`.
    #[arg(long, value_parser = parse_duration)]
    pub drop_every: Option<Duration>,
    /// Start muted: accept connections, send nothing, answer no pings.
    #[arg(long)]
    pub mute: bool,
    /// Delay every data frame by this much, e.g. `50ms`.
    #[arg(long, value_parser = parse_duration)]
    pub delay: Option<Duration>,
    /// Refuse upgrades for a while: `429:10s` or `418:1m`.
    #[arg(long, value_parser = parse_refusal)]
    pub refuse: Option<(u16, Duration)>,
}

fn parse_rate(text: &str) -> Result<f64, String> {
    let (number, per) = match text.split_once('/') {
        Some((n, "s")) => (n, 1.0),
        Some((n, "m")) => (n, 60.0),
        Some(_) => {
            return Err(format!(
                "invalid rate {text:?}: expected N/s, N/m or a number"
            ))
        }
        None => (text, 1.0),
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("invalid rate {text:?}: expected N/s, N/m or a number"))?;
    if !(0.0..=100_000.0).contains(&value) {
        return Err(format!("invalid rate {text:?}: out of range"));
    }
    Ok(value / per)
}

/// A firehose pace: like `--rate`, but up to 10 million frames per second and above zero.
fn parse_frame_rate(text: &str) -> Result<f64, String> {
    let scaled = match text.strip_suffix("/s") {
        Some(n) => n.trim().parse::<f64>().ok(),
        None => text.trim().parse::<f64>().ok(),
    };
    match scaled {
        Some(rate) if rate > 0.0 && rate <= 10_000_000.0 => Ok(rate),
        _ => Err(format!(
            "invalid firehose rate {text:?}: expected N/s with 0 < N <= 10000000"
        )),
    }
}

fn parse_refusal(text: &str) -> Result<(u16, Duration), String> {
    let (status, duration) = text
        .split_once(':')
        .ok_or_else(|| format!("invalid refusal {text:?}: expected 429:10s or 418:1m"))?;
    let status = match status {
        "429" => 429,
        "418" => 418,
        _ => {
            return Err(format!(
                "invalid refusal status {status:?}: expected 429 or 418"
            ))
        }
    };
    Ok((status, parse_duration(duration)?))
}

impl SimulateArgs {
    /// The simulator configuration these options describe.
    pub fn config(&self) -> SimulatorConfig {
        SimulatorConfig {
            listen: self.listen,
            markets: self
                .markets
                .clone()
                .or_else(|| super::region_markets(&self.region)),
            seed: self.seed,
            rate: self.rate,
            firehose: self.firehose,
            firehose_frames: self.firehose_frames,
            firehose_rate: self.firehose_rate,
            idle_timeout: self.idle_timeout,
            connect_limit_per_sec: self.connect_limit,
            drop_every: self.drop_every,
            ..SimulatorConfig::default()
        }
    }

    /// Starts the simulator with the start-up faults these options ask for.
    pub async fn start(&self) -> std::io::Result<SimulatorHandle> {
        let handle = Simulator::start(self.config()).await?;
        if self.mute {
            handle.inject(Fault::Mute { duration_ms: None });
        }
        if let Some(delay) = self.delay {
            handle.inject(Fault::Delay {
                per_frame_ms: delay.as_millis() as u64,
            });
        }
        if let Some((status, duration)) = self.refuse {
            handle.inject(Fault::RefuseHandshakes {
                status,
                duration_ms: duration.as_millis() as u64,
                retry_after_secs: None,
            });
        }
        Ok(handle)
    }
}

/// Runs until SIGINT or SIGTERM; prints `simulator listening on http://ADDR (WebSocket ws://ADDR/websocket/v1)`.
pub async fn run(args: SimulateArgs) -> std::io::Result<()> {
    use std::io::Write;
    let handle = args.start().await?;
    let addr = handle.addr();
    println!("simulator listening on http://{addr} (WebSocket ws://{addr}/websocket/v1)");
    std::io::stdout().flush()?;
    crate::shutdown_signal().await;
    handle.stop().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_refusals_parse() {
        assert_eq!(parse_rate("10/s"), Ok(10.0));
        assert_eq!(parse_rate("30/m"), Ok(0.5));
        assert_eq!(parse_rate("2.5"), Ok(2.5));
        assert!(parse_rate("10/h").is_err());
        assert!(parse_rate("fast").is_err());
        assert_eq!(parse_refusal("429:10s"), Ok((429, Duration::from_secs(10))));
        assert!(parse_refusal("500:1s").is_err());
        assert_eq!(parse_frame_rate("150000/s"), Ok(150_000.0));
        assert_eq!(parse_frame_rate("2000"), Ok(2000.0));
        assert!(parse_frame_rate("0/s").is_err());
        assert!(parse_frame_rate("1e9/s").is_err());
    }
}
