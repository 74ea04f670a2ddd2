//! What a consumer asked for: `?types=ticker,trade&codes=KRW-BTC,KRW-ETH`. Both are optional;
//! a missing one means everything subscribed. Link events always pass.

use std::collections::HashSet;

use super::EventKind;
use crate::upbit::types::code_problem;
use crate::upbit::{CandleInterval, DataType};

/// A consumer's filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// Bit `type_bit(t)` set for every wanted type.
    types: u32,
    /// `None`: every code.
    codes: Option<HashSet<String>>,
}

/// A `types` or `codes` value that cannot be a filter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FilterError {
    /// `invalid_type` or `invalid_code`.
    pub code: &'static str,
    pub message: String,
}

/// Every type's bit.
const ALL_TYPES: u32 = (1 << DataType::ALL.len()) - 1;

/// A data type's bit in a type mask.
pub fn type_bit(data_type: DataType) -> u32 {
    let index = match data_type {
        DataType::Ticker => 0,
        DataType::Trade => 1,
        DataType::Orderbook => 2,
        DataType::Candle(interval) => {
            3 + CandleInterval::ALL
                .iter()
                .position(|i| *i == interval)
                .unwrap_or(0)
        }
    };
    1 << index
}

impl Default for Filter {
    fn default() -> Self {
        Self::everything()
    }
}

impl Filter {
    /// Every type and code.
    pub fn everything() -> Self {
        Self {
            types: ALL_TYPES,
            codes: None,
        }
    }

    /// Parses the query values: comma-separated, at most `max_codes` codes.
    pub fn parse(
        types: Option<&str>,
        codes: Option<&str>,
        max_codes: usize,
    ) -> Result<Self, FilterError> {
        let mut filter = Self::everything();
        if let Some(types) = types {
            filter.types = 0;
            for name in list(types, "types", "invalid_type")? {
                let data_type: DataType = name.parse().map_err(|message| FilterError {
                    code: "invalid_type",
                    message: format!("types: {message}"),
                })?;
                filter.types |= type_bit(data_type);
            }
        }
        if let Some(codes) = codes {
            let mut set = HashSet::new();
            for code in list(codes, "codes", "invalid_code")? {
                if let Some(problem) = code_problem(code) {
                    return Err(FilterError {
                        code: "invalid_code",
                        message: format!("codes: {problem}"),
                    });
                }
                set.insert(code.to_owned());
            }
            if set.len() > max_codes {
                return Err(FilterError {
                    code: "invalid_code",
                    message: format!("codes: {} codes exceed the limit of {max_codes}", set.len()),
                });
            }
            filter.codes = Some(set);
        }
        Ok(filter)
    }

    /// True when the consumer wants this event.
    pub fn accepts(&self, kind: &EventKind) -> bool {
        match kind {
            EventKind::Link => true,
            EventKind::Market { data_type, code } => {
                self.types & type_bit(*data_type) != 0
                    && self.codes.as_ref().is_none_or(|c| c.contains(&**code))
            }
        }
    }

    /// The wanted types as a mask of [`type_bit`]s.
    pub fn type_mask(&self) -> u32 {
        self.types
    }

    /// For logs: `types=ticker,trade codes=KRW-BTC` or `all`.
    pub fn describe(&self) -> String {
        let types = if self.types == ALL_TYPES {
            "all".to_owned()
        } else {
            DataType::ALL
                .iter()
                .filter(|t| self.types & type_bit(**t) != 0)
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(",")
        };
        let codes = match &self.codes {
            None => "all".to_owned(),
            Some(codes) if codes.len() > 5 => format!("{} codes", codes.len()),
            Some(codes) => {
                let mut list: Vec<&str> = codes.iter().map(String::as_str).collect();
                list.sort_unstable();
                list.join(",")
            }
        };
        format!("types={types} codes={codes}")
    }
}

/// The non-empty, trimmed items of a comma-separated value.
fn list<'a>(value: &'a str, name: &str, code: &'static str) -> Result<Vec<&'a str>, FilterError> {
    let items: Vec<&str> = value.split(',').map(str::trim).collect();
    if items.iter().any(|i| i.is_empty()) {
        return Err(FilterError {
            code,
            message: format!(
                "{name}: empty item in {:?}; give a comma-separated list, or leave {name} out for everything",
                value.chars().take(100).collect::<String>()
            ),
        });
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn market(data_type: DataType, code: &str) -> EventKind {
        EventKind::Market {
            data_type,
            code: Arc::from(code),
        }
    }

    #[test]
    fn nothing_given_means_everything() {
        let f = Filter::parse(None, None, 10).unwrap();
        assert!(f.accepts(&market(DataType::Candle(CandleInterval::M240), "USDT-BTC")));
        assert!(f.accepts(&EventKind::Link));
        assert_eq!(f.describe(), "types=all codes=all");
    }

    #[test]
    fn types_and_codes_both_narrow_and_link_events_always_pass() {
        let f = Filter::parse(Some("ticker, candle.1m"), Some("KRW-BTC,KRW-ETH"), 10).unwrap();
        assert!(f.accepts(&market(DataType::Ticker, "KRW-BTC")));
        assert!(f.accepts(&market(DataType::Candle(CandleInterval::M1), "KRW-ETH")));
        assert!(!f.accepts(&market(DataType::Trade, "KRW-BTC")));
        assert!(!f.accepts(&market(DataType::Candle(CandleInterval::M3), "KRW-BTC")));
        assert!(!f.accepts(&market(DataType::Ticker, "KRW-XRP")));
        assert!(f.accepts(&EventKind::Link));
        assert_eq!(f.describe(), "types=ticker,candle.1m codes=KRW-BTC,KRW-ETH");
    }

    #[test]
    fn bad_values_say_what_is_accepted() {
        let e = Filter::parse(Some("ticker,quote"), None, 10).unwrap_err();
        assert_eq!(e.code, "invalid_type");
        assert!(e.message.contains("candle.1m"), "{e}");
        let e = Filter::parse(None, Some("krw-btc"), 10).unwrap_err();
        assert_eq!(e.code, "invalid_code");
        assert!(e.message.contains("upper case"), "{e}");
        let e = Filter::parse(Some(""), None, 10).unwrap_err();
        assert!(e.message.contains("leave types out"), "{e}");
        let e = Filter::parse(None, Some("KRW-BTC,,KRW-ETH"), 10).unwrap_err();
        assert_eq!(e.code, "invalid_code");
        let e = Filter::parse(None, Some("KRW-A,KRW-B,KRW-C"), 2).unwrap_err();
        assert!(e.message.contains("limit of 2"), "{e}");
    }

    #[test]
    fn every_type_has_its_own_bit() {
        let bits: HashSet<u32> = DataType::ALL.iter().map(|t| type_bit(*t)).collect();
        assert_eq!(bits.len(), DataType::ALL.len());
        assert_eq!(bits.iter().fold(0, |a, b| a | b), ALL_TYPES);
    }
}
