//! The subject scheme: `{prefix}.{type}.{code}` for market messages, `{prefix}.link` for link
//! events. Candle types have their dot replaced (`candle.1m` → `candle_1m`) so every market
//! subject has exactly three tokens after the prefix's and wildcards select by type or code:
//!
//! ```text
//! upbit.trade.KRW-BTC       one type of one code
//! upbit.trade.*             every code's trades        upbit.*.KRW-BTC   every type of one code
//! upbit.candle_1m.*         one candle interval         upbit.>           everything, links too
//! ```

use crate::stream::{Event, EventKind};
use crate::upbit::DataType;

/// The subject token of a type: its wire name with `.` replaced by `_`.
pub fn type_token(data_type: DataType) -> String {
    data_type.as_str().replace('.', "_")
}

/// A market code as one subject token: anything a subject cannot hold in a token (dots,
/// wildcards, whitespace) becomes `_` (Upbit codes such as `KRW-BTC` never need it).
pub fn code_token(code: &str) -> String {
    code.chars()
        .map(|c| match c {
            '.' | '*' | '>' => '_',
            c if c.is_whitespace() || c.is_control() => '_',
            c => c,
        })
        .collect()
}

/// The subject an event is published to.
pub fn of(prefix: &str, event: &Event) -> String {
    match &event.kind {
        EventKind::Market { data_type, code } => {
            format!("{prefix}.{}.{}", type_token(*data_type), code_token(code))
        }
        EventKind::Link => format!("{prefix}.link"),
    }
}

/// What the stream binds: everything under the prefix.
pub fn stream_subjects(prefix: &str) -> Vec<String> {
    vec![format!("{prefix}.>")]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::LinkChange;
    use crate::upbit::model::Trade;
    use crate::upbit::types::Side;
    use crate::upbit::{CandleInterval, Message};
    use std::time::SystemTime;

    #[test]
    fn market_subjects_have_three_tokens_and_links_their_own() {
        let trade = Message::Trade(Trade::bare("KRW-BTC", 1.0, 1.0, Side::Bid));
        let event = Event::market(&trade, SystemTime::now()).unwrap();
        assert_eq!(of("upbit", &event), "upbit.trade.KRW-BTC");
        assert_eq!(of("md.upbit", &event), "md.upbit.trade.KRW-BTC");
        assert_eq!(
            type_token(DataType::Candle(CandleInterval::ALL[0])),
            DataType::Candle(CandleInterval::ALL[0])
                .as_str()
                .replace('.', "_")
        );
        assert!(!type_token(DataType::Candle(CandleInterval::ALL[0])).contains('.'));
        let link = Event::link(&LinkChange::Connected, SystemTime::now(), 0);
        assert_eq!(of("upbit", &link), "upbit.link");
        assert_eq!(code_token("KRW-BTC"), "KRW-BTC");
        assert_eq!(code_token("A.B *>\n"), "A_B____");
        assert_eq!(stream_subjects("upbit"), ["upbit.>"]);
    }
}
