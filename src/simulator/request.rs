//! Server-side parsing of subscription requests, with Upbit's error frames.
//!
//! Upbit's rules as PROTOCOL.md states them: a JSON array; a `ticket` object is required
//! (`NO_TICKET`); one or more type objects (`NO_TYPE`) each with non-empty upper-case `codes`
//! (`NO_CODES` when absent, `INVALID_PARAM` when empty or malformed); orderbook codes may carry a
//! `.N` depth; an optional `format` object. Anything not an array of objects is `WRONG_FORMAT`.

use serde_json::Value;

use crate::upbit::types::is_valid_code;
use crate::upbit::{DataType, Format};

/// One type object of a request.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeRequest {
    pub data_type: DataType,
    /// Codes as requested (an orderbook code may keep its `.N` suffix).
    pub codes: Vec<String>,
    pub only_snapshot: bool,
    pub only_realtime: bool,
    /// Orderbook price grouping (0 = none).
    pub level: f64,
}

/// A valid request.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Subscribe {
        ticket: String,
        types: Vec<TypeRequest>,
        format: Format,
    },
    /// Upbit: the list request's format (DEFAULT when absent) becomes the connection's format.
    ListSubscriptions { ticket: String, format: Format },
}

/// An error frame: `{"error":{"name":..,"message":..}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorFrame {
    pub name: &'static str,
    pub message: String,
}

impl ErrorFrame {
    fn new(name: &'static str, message: impl Into<String>) -> Self {
        Self {
            name,
            message: message.into(),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::json!({ "error": { "name": self.name, "message": self.message } }).to_string()
    }
}

/// Orderbook depth of a requested code: `.N` with N in {1, 5, 15, 30}, anything else 30.
pub fn orderbook_depth(code: &str) -> usize {
    match code.split_once('.').map(|(_, n)| n) {
        Some("1") => 1,
        Some("5") => 5,
        Some("15") => 15,
        _ => 30,
    }
}

/// The market code without its depth suffix.
pub fn base_code(code: &str) -> &str {
    code.split_once('.').map_or(code, |(c, _)| c)
}

fn flag(
    object: &serde_json::Map<String, Value>,
    snake: &str,
    camel: &str,
) -> Result<bool, ErrorFrame> {
    match object.get(snake).or_else(|| object.get(camel)) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(ErrorFrame::new(
            "WRONG_FORMAT",
            "Requested using wrong format",
        )),
    }
}

/// Parses one text frame.
pub fn parse(text: &str) -> Result<Request, ErrorFrame> {
    let wrong_format = || ErrorFrame::new("WRONG_FORMAT", "Requested using wrong format");
    let Ok(Value::Array(parts)) = serde_json::from_str::<Value>(text) else {
        return Err(wrong_format());
    };
    let mut ticket = None;
    let mut format = Format::Default;
    let mut list = false;
    let mut types = Vec::new();
    for part in &parts {
        let Value::Object(object) = part else {
            return Err(wrong_format());
        };
        if let Some(value) = object.get("ticket") {
            match value.as_str().filter(|t| !t.is_empty()) {
                Some(t) => ticket = Some(t.to_owned()),
                None => {
                    return Err(ErrorFrame::new(
                        "NO_TICKET",
                        "Ticket field must be contained.",
                    ))
                }
            }
        } else if let Some(value) = object.get("method") {
            if value.as_str() != Some("LIST_SUBSCRIPTIONS") {
                return Err(ErrorFrame::new(
                    "INVALID_PARAM",
                    format!("method {value} is not supported."),
                ));
            }
            list = true;
        } else if let Some(value) = object.get("format") {
            let name = value.as_str().unwrap_or_default();
            format = name.parse().map_err(|_| {
                ErrorFrame::new("INVALID_PARAM", format!("format {name} is not supported."))
            })?;
        } else if let Some(value) = object.get("type") {
            let name = value.as_str().unwrap_or_default();
            let data_type = DataType::from_wire(name).ok_or_else(|| {
                ErrorFrame::new("INVALID_PARAM", format!("type {name} is not supported."))
            })?;
            let codes = match object.get("codes") {
                None => return Err(ErrorFrame::new("NO_CODES", "codes field not exists.")),
                Some(Value::Array(codes)) if codes.is_empty() => {
                    return Err(ErrorFrame::new("INVALID_PARAM", "codes field is empty."))
                }
                Some(Value::Array(codes)) => codes,
                Some(_) => return Err(wrong_format()),
            };
            let mut parsed = Vec::with_capacity(codes.len());
            for code in codes {
                let code = code.as_str().ok_or_else(wrong_format)?;
                let base = base_code(code);
                let suffix_ok = base.len() == code.len() || data_type == DataType::Orderbook;
                if !is_valid_code(base) || !suffix_ok {
                    return Err(ErrorFrame::new(
                        "INVALID_PARAM",
                        format!("code {code} is not valid."),
                    ));
                }
                if !parsed.iter().any(|c| c == code) {
                    parsed.push(code.to_owned());
                }
            }
            // Upbit's docs send it as a numeric string ("10000") while their table says Double.
            let level = match object.get("level") {
                None | Some(Value::Null) => 0.0,
                Some(Value::String(text)) => text.trim().parse().map_err(|_| wrong_format())?,
                Some(v) => v.as_f64().ok_or_else(wrong_format)?,
            };
            types.push(TypeRequest {
                data_type,
                codes: parsed,
                only_snapshot: flag(object, "is_only_snapshot", "isOnlySnapshot")?,
                only_realtime: flag(object, "is_only_realtime", "isOnlyRealtime")?,
                level,
            });
        }
    }
    let ticket =
        ticket.ok_or_else(|| ErrorFrame::new("NO_TICKET", "Ticket field must be contained."))?;
    if list {
        return Ok(Request::ListSubscriptions { ticket, format });
    }
    if types.is_empty() {
        return Err(ErrorFrame::new("NO_TYPE", "type field not exists."));
    }
    Ok(Request::Subscribe {
        ticket,
        types,
        format,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> &'static str {
        parse(text).unwrap_err().name
    }

    #[test]
    fn a_full_request() {
        let request = parse(
            r#"[{"ticket":"t"},{"type":"ticker","codes":["KRW-BTC","KRW-ETH"]},
                {"type":"orderbook","codes":["KRW-BTC.15"],"level":10000,"isOnlyRealtime":true},
                {"type":"candle.1m","codes":["KRW-BTC"],"is_only_snapshot":true},{"format":"SIMPLE_LIST"}]"#,
        )
        .unwrap();
        let Request::Subscribe {
            ticket,
            types,
            format,
        } = request
        else {
            panic!()
        };
        assert_eq!((ticket.as_str(), format), ("t", Format::SimpleList));
        assert_eq!(types.len(), 3);
        assert_eq!(types[1].codes, ["KRW-BTC.15"]);
        assert_eq!((types[1].level, types[1].only_realtime), (10000.0, true));
        assert!(types[2].only_snapshot && !types[2].only_realtime);
        assert_eq!(orderbook_depth("KRW-BTC.15"), 15);
        assert_eq!(orderbook_depth("KRW-BTC.7"), 30);
        assert_eq!(orderbook_depth("KRW-BTC"), 30);
    }

    #[test]
    fn every_error_name() {
        assert_eq!(error("PONG"), "WRONG_FORMAT");
        assert_eq!(error(r#"{"ticket":"t"}"#), "WRONG_FORMAT");
        assert_eq!(
            error(r#"[{"type":"ticker","codes":["KRW-BTC"]}]"#),
            "NO_TICKET"
        );
        assert_eq!(
            error(r#"[{"ticket":""},{"type":"ticker","codes":["KRW-BTC"]}]"#),
            "NO_TICKET"
        );
        assert_eq!(error(r#"[{"ticket":"t"},{"format":"DEFAULT"}]"#), "NO_TYPE");
        assert_eq!(error(r#"[{"ticket":"t"},{"type":"ticker"}]"#), "NO_CODES");
        assert_eq!(
            error(r#"[{"ticket":"t"},{"type":"ticker","codes":[]}]"#),
            "INVALID_PARAM"
        );
        assert_eq!(
            error(r#"[{"ticket":"t"},{"type":"ticker","codes":["krw-btc"]}]"#),
            "INVALID_PARAM"
        );
        assert_eq!(
            error(r#"[{"ticket":"t"},{"type":"ticker","codes":["KRW-BTC.15"]}]"#),
            "INVALID_PARAM"
        );
        assert_eq!(
            error(r#"[{"ticket":"t"},{"type":"quote","codes":["KRW-BTC"]}]"#),
            "INVALID_PARAM"
        );
        assert_eq!(
            error(r#"[{"ticket":"t"},{"type":"ticker","codes":["KRW-BTC"]},{"format":"XML"}]"#),
            "INVALID_PARAM"
        );
        assert_eq!(
            error(r#"[{"ticket":"t"},{"type":"ticker","codes":"KRW-BTC"}]"#),
            "WRONG_FORMAT"
        );
        let e = parse(r#"[{"ticket":"t"},{"type":"quote","codes":["KRW-BTC"]}]"#).unwrap_err();
        assert_eq!(e.message, "type quote is not supported.");
        assert_eq!(
            e.to_json(),
            r#"{"error":{"message":"type quote is not supported.","name":"INVALID_PARAM"}}"#
        );
    }

    #[test]
    fn list_subscriptions() {
        assert_eq!(
            parse(r#"[{"ticket":"x"},{"method":"LIST_SUBSCRIPTIONS"}]"#),
            Ok(Request::ListSubscriptions {
                ticket: "x".into(),
                format: Format::Default
            })
        );
        assert_eq!(
            parse(r#"[{"ticket":"x"},{"method":"LIST_SUBSCRIPTIONS"},{"format":"SIMPLE"}]"#),
            Ok(Request::ListSubscriptions {
                ticket: "x".into(),
                format: Format::Simple
            })
        );
    }

    mod properties {
        use proptest::prelude::*;
        use serde_json::{json, Value};

        use super::super::*;

        const NAMES: [&str; 5] = [
            "WRONG_FORMAT",
            "NO_TICKET",
            "NO_TYPE",
            "NO_CODES",
            "INVALID_PARAM",
        ];
        const TYPES: [&str; 5] = ["ticker", "trade", "orderbook", "candle.1s", "candle.240m"];

        /// Any JSON value, nested a few levels.
        fn any_json() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                any::<f64>().prop_map(|f| json!(f)),
                "[ -~]{0,12}".prop_map(Value::from),
                prop::sample::select(vec!["ticket", "type", "codes", "format", "ticker"])
                    .prop_map(Value::from),
            ];
            leaf.prop_recursive(4, 64, 6, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                    prop::collection::btree_map(
                        prop::sample::select(vec![
                            "ticket",
                            "type",
                            "codes",
                            "format",
                            "method",
                            "level",
                            "is_only_snapshot",
                            "isOnlyRealtime",
                            "x",
                        ])
                        .prop_map(str::to_owned),
                        inner,
                        0..5
                    )
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        proptest! {
            /// Any text gets either a request or one of Upbit's documented error names.
            #[test]
            fn any_text_parses_or_gets_a_documented_error(text in "\\PC{0,200}") {
                if let Err(error) = parse(&text) {
                    prop_assert!(NAMES.contains(&error.name), "{}", error.name);
                }
            }

            #[test]
            fn any_json_shape_parses_or_gets_a_documented_error(value in any_json()) {
                if let Err(error) = parse(&value.to_string()) {
                    prop_assert!(NAMES.contains(&error.name), "{}", error.name);
                }
            }

            /// Every well-formed request parses to exactly what it asked for.
            #[test]
            fn well_formed_requests_round_trip(
                ticket in "[a-z0-9-]{1,36}",
                picks in prop::collection::vec(
                    (0usize..TYPES.len(), prop::collection::vec("[A-Z]{3}-[A-Z0-9]{1,6}", 1..5)),
                    1..4,
                ),
                format in prop::sample::select(vec!["DEFAULT", "SIMPLE", "JSON_LIST", "SIMPLE_LIST"]),
            ) {
                let mut parts = vec![json!({ "ticket": ticket })];
                for (t, codes) in &picks {
                    parts.push(json!({ "type": TYPES[*t], "codes": codes }));
                }
                parts.push(json!({ "format": format }));
                let parsed = parse(&Value::Array(parts).to_string());
                let Ok(Request::Subscribe { ticket: got, types, format: got_format }) = parsed else {
                    return Err(TestCaseError::fail(format!("{parsed:?}")));
                };
                prop_assert_eq!(got, ticket);
                prop_assert_eq!(got_format.as_str(), format);
                prop_assert_eq!(types.len(), picks.len());
                for (parsed, (t, codes)) in types.iter().zip(&picks) {
                    prop_assert_eq!(parsed.data_type.as_str(), TYPES[*t]);
                    prop_assert_eq!(&parsed.codes, codes);
                }
            }
        }
    }
}
