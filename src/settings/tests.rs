//! Settings tests: defaults, layering, every problem listed at once, and a property test over
//! every documented key.

use super::*;
use crate::subscription::Shard;

#[test]
fn defaults_are_the_documented_ones() {
    let s = Settings::from_overrides([]).unwrap();
    assert_eq!(s.upbit.url, "wss://api.upbit.com/websocket/v1");
    assert_eq!(
        s.upbit.codes,
        ["KRW-BTC", "KRW-ETH", "KRW-SOL", "KRW-ADA", "KRW-XRP"]
    );
    assert_eq!(s.upbit.types, [DataType::Ticker]);
    assert_eq!(s.upbit.format, Format::Default);
    assert_eq!(s.connection.ping_interval, Duration::from_secs(30));
    assert_eq!(s.connection.idle_timeout, Duration::from_secs(60));
    assert_eq!(s.connection.backoff_min, Duration::from_secs(1));
    assert_eq!(s.connection.backoff_max, Duration::from_secs(60));
    assert_eq!(s.http.listen, "0.0.0.0:8081".parse().unwrap());
}

#[test]
fn environment_overrides_with_lists_and_durations() {
    let s = Settings::from_overrides([
        ("upbit.url", "ws://127.0.0.1:9944/websocket/v1"),
        ("upbit.codes", "KRW-BTC,KRW-ETH,KRW-BTC"),
        ("upbit.types", "ticker,trade,orderbook,candle.1m"),
        ("upbit.format", "SIMPLE"),
        ("connection.ping_interval", "500ms"),
        ("connection.idle_timeout", "2s"),
        ("http.listen", "127.0.0.1:18081"),
    ])
    .unwrap();
    assert_eq!(s.upbit.codes, ["KRW-BTC", "KRW-ETH"]);
    assert_eq!(s.upbit.types.len(), 4);
    assert_eq!(s.upbit.format, Format::Simple);
    assert_eq!(s.connection.ping_interval, Duration::from_millis(500));
    assert_eq!(s.upbit.subscription().len(), 8);
}

#[test]
fn a_single_code_in_the_environment_is_a_list() {
    let s = Settings::from_overrides([("upbit.codes", "KRW-DOGE")]).unwrap();
    assert_eq!(s.upbit.codes, ["KRW-DOGE"]);
}

#[test]
fn every_problem_is_reported_at_once() {
    let err = Settings::from_overrides([
        ("upbit.url", "https://api.upbit.com"),
        ("upbit.codes", "krw-btc,KRW_ETH,KRW-XRP"),
        ("upbit.types", "ticker,quote"),
        ("upbit.format", "XML"),
        ("connection.backoff_max", "forever"),
        ("http.listen", "localhost"),
    ])
    .unwrap_err();
    let text = err.to_string();
    for needle in [
        "upbit.url",
        "upper case",
        "KRW_ETH",
        "quote",
        "XML",
        "backoff_max",
        "http.listen",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    assert_eq!(err.problems.len(), 7, "{text}");
}

#[test]
fn control_token_from_env_or_file_never_both() {
    let s = Settings::from_overrides([]).unwrap();
    assert!(s.control.token.is_none());
    assert_eq!(
        (s.control.max_codes, s.control.max_body_bytes),
        (500, 65536)
    );
    let s = Settings::from_overrides([("control.token", "0123456789abcdef0123")]).unwrap();
    assert!(s.control.token.unwrap().matches("0123456789abcdef0123"));
    let err = Settings::from_overrides([("control.token", "short")]).unwrap_err();
    assert!(err.to_string().contains("16 characters"), "{err}");
    assert!(
        !err.to_string().contains("short"),
        "the token never appears in errors: {err}"
    );
    let err = Settings::from_overrides([
        ("control.token", "0123456789abcdef0123"),
        ("control.token_file", "/nonexistent/token"),
    ])
    .unwrap_err();
    assert!(err.to_string().contains("not both"), "{err}");
    let err = Settings::from_overrides([("control.token_file", "/nonexistent/token")]).unwrap_err();
    assert!(
        err.to_string().contains("cannot read /nonexistent/token"),
        "{err}"
    );
}

#[test]
fn environment_text_keeps_its_leading_zeros() {
    let s = Settings::from_overrides([
        ("control.token", "00001234567890123456"),
        ("control.state_file", "0042"),
        ("upbit.orderbook_depth", "05"),
    ])
    .unwrap();
    let token = s.control.token.unwrap();
    assert!(token.matches("00001234567890123456"));
    assert!(!token.matches("1234567890123456"));
    assert_eq!(s.control.state_file.as_deref(), Some(Path::new("0042")));
    assert_eq!(s.upbit.orderbook.depth, Some(5));
}

#[test]
fn per_address_consumers_and_body_timeout_have_defaults_and_bounds() {
    let s = Settings::from_overrides([]).unwrap();
    assert_eq!(s.stream.max_consumers_per_address, 10);
    assert_eq!(s.control.body_timeout, Duration::from_secs(10));
    let s = Settings::from_overrides([
        ("stream.max_consumers_per_address", "3"),
        ("control.body_timeout", "250ms"),
    ])
    .unwrap();
    assert_eq!(s.stream.max_consumers_per_address, 3);
    assert_eq!(s.control.body_timeout, Duration::from_millis(250));
    let err = Settings::from_overrides([
        ("stream.max_consumers_per_address", "0"),
        ("control.body_timeout", "0s"),
    ])
    .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("stream.max_consumers_per_address"), "{text}");
    assert!(text.contains("control.body_timeout"), "{text}");
}

#[test]
fn stream_settings_have_defaults_and_bounds() {
    let s = Settings::from_overrides([]).unwrap();
    assert!(s.stream.enabled);
    assert_eq!((s.stream.max_consumers, s.stream.trade_queue), (100, 1000));
    let s = Settings::from_overrides([
        ("stream.enabled", "false"),
        ("stream.max_consumers", "3"),
        ("stream.trade_queue", "20"),
    ])
    .unwrap();
    assert!(!s.stream.enabled);
    assert_eq!((s.stream.max_consumers, s.stream.trade_queue), (3, 20));
    let err =
        Settings::from_overrides([("stream.max_consumers", "0"), ("stream.trade_queue", "-1")])
            .unwrap_err();
    assert_eq!(err.problems.len(), 2, "{err}");
    assert!(err.problems[0].contains("stream.max_consumers"), "{err}");
}

#[test]
fn unknown_keys_are_rejected() {
    let err = Settings::from_overrides([("connection.ping_intervall", "1s")]).unwrap_err();
    assert!(err.to_string().contains("ping_intervall"), "{err}");
    let err = Settings::from_overrides([("nonsense.key", "1")]).unwrap_err();
    assert!(err.to_string().contains("nonsense"), "{err}");
}

#[test]
fn every_refused_key_is_listed_even_several_in_one_section() {
    let err = Settings::from_overrides([
        ("connection.backoff_max", "forever"),
        ("connection.max_codes_per_connection", "-1"),
        ("connection.ping_intervall", "1s"),
        ("stream.enabled", "maybe"),
        ("control.token", "short"),
        ("control.body_timeout", "9000h"),
        ("nonsense.key", "1"),
    ])
    .unwrap_err();
    let problems = &err.problems;
    for key in [
        "nonsense: unknown section",
        "connection.backoff_max: invalid duration \"forever\"",
        "connection.max_codes_per_connection: -1 is out of range 0..=100000",
        "connection.ping_intervall: unknown field",
        "control.body_timeout: invalid duration \"9000h\": longer than a year",
        "control.token: use at least 16 characters",
        "stream.enabled:",
    ] {
        assert!(
            problems.iter().any(|p| p.starts_with(key)),
            "{key} missing from {err}"
        );
    }
    assert_eq!(problems.len(), 7, "{err}");
}

#[test]
fn durations_take_humantimes_wider_spellings() {
    let s = Settings::from_overrides([
        ("connection.idle_timeout", "1m 30s"),
        ("connection.ping_interval", "20sec"),
        ("discovery.refresh", "1.5s"),
    ])
    .unwrap();
    assert_eq!(s.connection.idle_timeout, Duration::from_secs(90));
    assert_eq!(s.connection.ping_interval, Duration::from_secs(20));
    assert_eq!(s.discovery.refresh, Duration::from_millis(1500));
}

#[test]
fn durations_are_checked_against_each_other() {
    let err = Settings::from_overrides([
        ("connection.ping_interval", "30s"),
        ("connection.idle_timeout", "10s"),
        ("connection.backoff_min", "5s"),
        ("connection.backoff_max", "1s"),
    ])
    .unwrap_err();
    assert_eq!(err.problems.len(), 2, "{err}");
    assert!(
        err.problems[0].contains("longer than ping_interval"),
        "{err}"
    );
    assert!(err.problems[1].contains("backoff_max"), "{err}");
}

#[test]
fn idle_timeout_must_stay_under_upbits_limit() {
    let err = Settings::from_overrides([("connection.idle_timeout", "2m")]).unwrap_err();
    assert!(err.to_string().contains("Upbit's own idle close"), "{err}");
}

#[test]
fn a_config_file_layers_over_defaults_and_env_over_it() {
    let dir = std::env::temp_dir().join(format!("upbit-settings-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.toml");
    std::fs::write(
        &path,
        "[upbit]\ncodes = [\"KRW-DOGE\"]\nformat = \"SIMPLE\"\n",
    )
    .unwrap();
    let env = vec![(
        "UPBIT_EXPORTER__UPBIT__FORMAT".to_owned(),
        "JSON_LIST".to_owned(),
    )];
    let s = Settings::load(Sources {
        file: Some(&path),
        env,
    })
    .unwrap();
    assert_eq!(s.upbit.codes, ["KRW-DOGE"]);
    assert_eq!(s.upbit.format, Format::JsonList);
    assert_eq!(
        s.upbit.types,
        [DataType::Ticker],
        "untouched keys keep defaults"
    );
    let missing = Settings::load(Sources {
        file: Some(&dir.join("nope.toml")),
        env: vec![],
    });
    assert!(missing.unwrap_err().to_string().contains("does not exist"));
    std::fs::write(&path, "[upbit]\ncodes = 5\n").unwrap();
    let wrong_type = Settings::load(Sources {
        file: Some(&path),
        env: vec![],
    })
    .unwrap_err();
    assert!(
        wrong_type.to_string().contains("upbit.codes"),
        "{wrong_type}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_region_picks_the_hosts_and_an_explicit_url_wins() {
    for (region, ws, list) in [
        (
            "kr",
            "wss://api.upbit.com/websocket/v1",
            "https://api.upbit.com/v1/market/all",
        ),
        (
            "sg",
            "wss://sg-api.upbit.com/websocket/v1",
            "https://sg-api.upbit.com/v1/market/all",
        ),
        (
            "id",
            "wss://id-api.upbit.com/websocket/v1",
            "https://id-api.upbit.com/v1/market/all",
        ),
        (
            "th",
            "wss://th-api.upbit.com/websocket/v1",
            "https://th-api.upbit.com/v1/market/all",
        ),
    ] {
        let s = Settings::from_overrides([("upbit.region", region)]).unwrap();
        assert_eq!((s.upbit.url.as_str(), s.discovery.url.as_str()), (ws, list));
    }
    let s = Settings::from_overrides([
        ("upbit.region", "sg"),
        ("upbit.url", "ws://127.0.0.1:9944/websocket/v1"),
    ])
    .unwrap();
    assert_eq!(s.upbit.url, "ws://127.0.0.1:9944/websocket/v1");
    assert_eq!(s.upbit.region, "sg");
    let err = Settings::from_overrides([("upbit.region", "jp")]).unwrap_err();
    assert!(err.to_string().contains("upbit.region"), "{err}");
}

#[test]
fn orderbook_depth_and_level_are_checked() {
    let s = Settings::from_overrides([
        ("upbit.orderbook_depth", "15"),
        ("upbit.orderbook_level", " 1000 "),
    ])
    .unwrap();
    assert_eq!(s.upbit.orderbook.depth, Some(15));
    assert_eq!(s.upbit.orderbook.level.as_deref(), Some("1000"));
    let defaults = Settings::from_overrides(Vec::<(&str, &str)>::new()).unwrap();
    assert_eq!(defaults.upbit.orderbook, OrderbookOptions::default());
    let err = Settings::from_overrides([
        ("upbit.orderbook_depth", "7"),
        ("upbit.orderbook_level", "ten"),
    ])
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("upbit.orderbook_depth: 7 is not one of 1, 5, 15, 30"),
        "{err}"
    );
    assert!(err.contains("upbit.orderbook_level"), "{err}");
}

#[test]
fn the_market_list_url_derives_from_the_websocket_url() {
    assert_eq!(
        market_list_url("wss://api.upbit.com/websocket/v1").as_deref(),
        Some("https://api.upbit.com/v1/market/all")
    );
    assert_eq!(
        market_list_url("ws://127.0.0.1:9944/websocket/v1").as_deref(),
        Some("http://127.0.0.1:9944/v1/market/all")
    );
    let s =
        Settings::from_overrides([("upbit.url", "wss://sg-api.upbit.com/websocket/v1")]).unwrap();
    assert_eq!(s.discovery.url, "https://sg-api.upbit.com/v1/market/all");
    assert_eq!(s.discovery.refresh, Duration::from_secs(600));
    assert_eq!(s.connection.max_codes_per_connection, 200);
    let s = Settings::from_overrides([("discovery.url", "http://10.0.0.1:8080/markets")]).unwrap();
    assert_eq!(s.discovery.url, "http://10.0.0.1:8080/markets");
}

#[test]
fn patterns_are_accepted_and_bad_ones_explained() {
    let s = Settings::from_overrides([("upbit.codes", "KRW-*,BTC-ETH,*")]).unwrap();
    assert_eq!(s.upbit.codes, ["KRW-*", "BTC-ETH", "*"]);
    let err = Settings::from_overrides([
        ("upbit.codes", "KRW-B*"),
        ("discovery.url", "ftp://x"),
        ("discovery.refresh", "10ms"),
        ("connection.max_codes_per_connection", "-1"),
    ])
    .unwrap_err()
    .to_string();
    for needle in [
        "QUOTE-*",
        "discovery.url",
        "discovery.refresh",
        "max_codes_per_connection",
    ] {
        assert!(err.contains(needle), "{needle} missing from {err}");
    }
}

mod properties {
    use proptest::prelude::*;

    use super::super::*;

    /// Every key an operator can set through the environment, read from the documented
    /// defaults (config/default.toml) so a new key is covered the day it is added.
    fn keys() -> Vec<String> {
        let mut section = String::new();
        let mut keys = Vec::new();
        for line in DEFAULT_TOML.lines().map(str::trim) {
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name.to_uppercase();
            } else if let Some((key, _)) = line.split_once('=').filter(|_| !line.starts_with('#')) {
                keys.push(format!(
                    "{ENV_PREFIX}__{section}__{}",
                    key.trim().to_uppercase()
                ));
            }
        }
        keys
    }

    #[test]
    fn the_key_list_covers_every_section() {
        let keys = keys();
        assert!(keys.len() >= 30, "{keys:?}");
        for key in [
            "UPBIT__REGION",
            "CONTROL__BODY_TIMEOUT",
            "STREAM__MAX_CONSUMERS_PER_ADDRESS",
            "DISCOVERY__REFRESH",
        ] {
            assert!(
                keys.iter().any(|k| k.ends_with(key)),
                "{key} missing from {keys:?}"
            );
        }
    }

    fn hostile_value() -> impl Strategy<Value = String> {
        prop_oneof![
            "\\PC{0,40}",
            "-?[0-9]{1,25}(ms|s|m|h|d)?",
            "[A-Za-z,\\- ]{0,40}",
            Just("18446744073709551616".to_owned()),
            Just("0s".to_owned()),
            Just("ws://[::1".to_owned()),
            Just(",,,".to_owned()),
        ]
    }

    proptest! {
        /// Any value for any key loads or is refused with a message; never a panic.
        #[test]
        fn any_environment_loads_or_is_refused_with_a_message(
            pairs in prop::collection::vec((0usize..64, hostile_value()), 1..5),
        ) {
            let keys = keys();
            let env = pairs
                .into_iter()
                .map(|(k, v)| (keys[k % keys.len()].clone(), v))
                .collect();
            if let Err(error) = Settings::load(Sources { file: None, env }) {
                prop_assert!(!error.to_string().is_empty());
            }
        }
    }
}

#[test]
fn market_figures_default_and_come_from_the_environment_checked() {
    let s = Settings::from_overrides([]).unwrap();
    assert_eq!(s.metrics, MetricsSettings::default());
    assert_eq!(s.metrics.depth_bands_bps, [10, 50, 100, 200]);
    let s = Settings::from_overrides([
        ("metrics.depth_bands_bps", "100,10,100"),
        ("metrics.candle_fields", "start"),
    ])
    .unwrap();
    assert_eq!(s.metrics.depth_bands_bps, [10, 100], "sorted, distinct");
    assert_eq!(s.metrics.candle_fields, ["start"]);
    let err = Settings::from_overrides([
        ("metrics.depth_bands_bps", "0,1,2,3,4,5,6,7,8,9,20000"),
        ("metrics.candle_fields", "open,vwap"),
    ])
    .unwrap_err();
    let text = err.to_string();
    for needle in [
        "metrics.depth_bands_bps",
        "0 is",
        "20000 is",
        "at most 8",
        "metrics.candle_fields",
        "\"vwap\"",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    assert_eq!(err.problems.len(), 2, "one line per key: {text}");
}

#[test]
fn an_empty_list_in_the_environment_is_the_empty_list() {
    let s = Settings::from_overrides([("metrics.depth_bands_bps", "")]).unwrap();
    assert!(s.metrics.depth_bands_bps.is_empty());
    let s = Settings::from_overrides([("metrics.candle_fields", " ")]).unwrap();
    assert!(s.metrics.candle_fields.is_empty());
}

#[test]
fn shard_defaults_to_everything_and_comes_from_the_environment() {
    assert_eq!(Settings::from_overrides([]).unwrap().shard, Shard::ALL);
    let env = vec![
        ("UPBIT_EXPORTER__SHARD__INDEX".to_owned(), "2".to_owned()),
        ("UPBIT_EXPORTER__SHARD__COUNT".to_owned(), "3".to_owned()),
    ];
    let s = Settings::load(Sources { file: None, env }).unwrap();
    assert_eq!(s.shard, Shard { index: 2, count: 3 });
}

#[test]
fn a_shard_index_at_or_past_the_count_or_a_count_of_zero_is_refused() {
    let err = Settings::from_overrides([("shard.index", "3"), ("shard.count", "3")]).unwrap_err();
    assert_eq!(
        err.problems,
        [
            "shard.index: 3 is not below shard.count (3); shards are numbered 0 to count - 1 \
          (a StatefulSet's pod ordinal with count = its replicas)"
        ]
    );
    let err =
        Settings::from_overrides([("shard.count", "0"), ("upbit.format", "XML")]).unwrap_err();
    assert_eq!(err.problems.len(), 2, "{err}");
    assert!(
        err.problems
            .contains(&"shard.count: 0 is out of range 1..=1000".to_owned()),
        "{err}"
    );
    let err = Settings::from_overrides([("shard.index", "-1"), ("shard.count", "x")]).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("shard.index: -1 is out of range 0..=999"),
        "{text}"
    );
    assert!(text.contains("shard.count"), "{text}");
}

#[test]
fn control_max_codes_bounds_the_shards_part_of_the_explicit_codes() {
    let codes = "KRW-BTC,KRW-ETH,KRW-XRP,BTC-ETH,USDT-BTC,KRW-SOL";
    // Owners among 3 (fixed by the hash's test): KRW-ETH and USDT-BTC fall to shard 0.
    let s = Settings::from_overrides([
        ("upbit.codes", codes),
        ("control.max_codes", "2"),
        ("shard.index", "0"),
        ("shard.count", "3"),
    ])
    .unwrap();
    assert_eq!(s.upbit.codes.len(), 6, "every replica keeps the whole list");
    let err = Settings::from_overrides([
        ("upbit.codes", codes),
        ("control.max_codes", "2"),
        ("shard.index", "2"),
        ("shard.count", "3"),
    ])
    .unwrap_err();
    assert_eq!(
        err.problems,
        ["upbit.codes: 3 of them fall to shard 2 of 3; they exceed control.max_codes (2)"]
    );
}

#[test]
fn an_empty_shard_index_is_refused_not_taken_for_zero() {
    // A StatefulSet pod on Kubernetes before 1.28 has no pod-index label: the downward API then
    // sets the variable to "", which must stop the start rather than make every pod shard 0.
    let env = vec![
        ("UPBIT_EXPORTER__SHARD__INDEX".to_owned(), String::new()),
        ("UPBIT_EXPORTER__SHARD__COUNT".to_owned(), "3".to_owned()),
    ];
    let err = Settings::load(Sources { file: None, env }).unwrap_err();
    assert_eq!(err.problems, ["shard.index: string \"\" is not an integer"]);
}
