//! Market-structure figures of one orderbook, computed in one pass over its units without
//! allocating: mid, spread, spread ratio, imbalance and the depth within each band around the mid.
//!
//! Definitions (the README's metrics table says the same):
//! - A side's level counts when its price and size are both above 0 (Upbit fills an empty side
//!   with zeros). The best ask and bid are the first unit's (Upbit sends the best first).
//! - mid = (best ask + best bid) / 2, spread = best ask − best bid, spread ratio = spread / mid;
//!   all three are NaN when either side has no best level (there is no mid to speak of).
//! - imbalance = (Σ bid size − Σ ask size) / (Σ bid size + Σ ask size) over the units received;
//!   NaN when both sides are empty.
//! - depth(side, bps) = Σ price × size (quote currency) of that side's levels whose price lies
//!   within `bps` basis points of the mid (ask ≤ mid × (1 + bps/10⁴), bid ≥ mid × (1 − bps/10⁴)).
//!   NaN without a mid.
//! - complete(side, bps) is true only when some received level of that side lies *beyond* the
//!   band's edge: Upbit sends the N best levels, so every order within the band was in the
//!   message. When all received levels fall inside the band, the band may reach past the last
//!   unit and its depth is a lower bound: complete is false.

use crate::upbit::model::OrderbookUnit;

/// The most depth bands a book is measured at (the settings reject more), so the per-band sums
/// live on the stack.
pub const MAX_DEPTH_BANDS: usize = 8;

/// The depth bands measured until the list is configurable, in basis points of the mid.
pub const DEFAULT_DEPTH_BANDS_BPS: [u32; 4] = [10, 50, 100, 200];

/// Depth of one side within one band.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SideDepth {
    /// Quote-currency value of the levels within the band; NaN without a mid.
    pub value: f64,
    /// A received level lies beyond the band's edge: `value` covers the whole band.
    pub complete: bool,
}

/// The figures of one orderbook. `depth[i]` is `[ask, bid]` for `bands[i]`; only the first
/// `bands.len()` entries are meaningful.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BookFigures {
    pub mid: f64,
    pub spread: f64,
    pub spread_ratio: f64,
    pub imbalance: f64,
    pub depth: [[SideDepth; 2]; MAX_DEPTH_BANDS],
}

/// Computes the figures of a book's `units` (best first) for `bands` (basis points; at most
/// [`MAX_DEPTH_BANDS`], any beyond are ignored).
pub fn book_figures(units: &[OrderbookUnit], bands: &[u32]) -> BookFigures {
    let bands = &bands[..bands.len().min(MAX_DEPTH_BANDS)];
    let first = units.first();
    let best_ask = first
        .filter(|u| u.ask_price > 0.0 && u.ask_size > 0.0)
        .map(|u| u.ask_price);
    let best_bid = first
        .filter(|u| u.bid_price > 0.0 && u.bid_size > 0.0)
        .map(|u| u.bid_price);
    let (mid, spread) = match (best_ask, best_bid) {
        (Some(ask), Some(bid)) => ((ask + bid) / 2.0, ask - bid),
        _ => (f64::NAN, f64::NAN),
    };
    // Band edges, [ask, bid] per band; NaN edges (no mid) match no level.
    let mut edges = [[f64::NAN; 2]; MAX_DEPTH_BANDS];
    for (edge, bps) in edges.iter_mut().zip(bands) {
        let width = mid * f64::from(*bps) / 10_000.0;
        *edge = [mid + width, mid - width];
    }
    let empty = SideDepth {
        value: if mid.is_nan() { f64::NAN } else { 0.0 },
        complete: false,
    };
    let mut depth = [[empty; 2]; MAX_DEPTH_BANDS];
    let (mut ask_size, mut bid_size) = (0.0, 0.0);
    for unit in units {
        let ask = unit.ask_price > 0.0 && unit.ask_size > 0.0;
        let bid = unit.bid_price > 0.0 && unit.bid_size > 0.0;
        if ask {
            ask_size += unit.ask_size;
        }
        if bid {
            bid_size += unit.bid_size;
        }
        for (band, [ask_edge, bid_edge]) in depth.iter_mut().zip(&edges).take(bands.len()) {
            if ask {
                if unit.ask_price <= *ask_edge {
                    band[0].value += unit.ask_price * unit.ask_size;
                } else if unit.ask_price > *ask_edge {
                    band[0].complete = true;
                }
            }
            if bid {
                if unit.bid_price >= *bid_edge {
                    band[1].value += unit.bid_price * unit.bid_size;
                } else if unit.bid_price < *bid_edge {
                    band[1].complete = true;
                }
            }
        }
    }
    let total = ask_size + bid_size;
    BookFigures {
        mid,
        spread,
        spread_ratio: spread / mid,
        imbalance: if total > 0.0 {
            (bid_size - ask_size) / total
        } else {
            f64::NAN
        },
        depth,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upbit::decode::decode_frame;
    use crate::upbit::Message;

    fn unit(ask_price: f64, ask_size: f64, bid_price: f64, bid_size: f64) -> OrderbookUnit {
        OrderbookUnit {
            ask_price,
            bid_price,
            ask_size,
            bid_size,
        }
    }

    fn book(units: Vec<OrderbookUnit>) -> Vec<OrderbookUnit> {
        units
    }

    fn depth(f: &BookFigures, band: usize) -> [(f64, bool); 2] {
        f.depth[band].map(|d| (d.value, d.complete))
    }

    /// mid 1000, bands 10 bps (999..1001) and 50 bps (995..1005).
    #[test]
    fn a_two_sided_book_by_hand() {
        let f = book_figures(
            &book(vec![
                unit(1000.5, 2.0, 999.5, 1.0),
                unit(1003.0, 1.0, 996.0, 3.0),
                unit(1010.0, 5.0, 990.0, 4.0),
            ]),
            &[10, 50],
        );
        assert_eq!(f.mid, 1000.0);
        assert_eq!(f.spread, 1.0);
        assert_eq!(f.spread_ratio, 0.001);
        // bids 1 + 3 + 4 = 8, asks 2 + 1 + 5 = 8.
        assert_eq!(f.imbalance, 0.0);
        // 10 bps: ask 1000.5 × 2 = 2001; bid 999.5 × 1 = 999.5; both sides have a level beyond.
        assert_eq!(depth(&f, 0), [(2001.0, true), (999.5, true)]);
        // 50 bps: ask 2001 + 1003 = 3004; bid 999.5 + 996 × 3 = 3987.5.
        assert_eq!(depth(&f, 1), [(3004.0, true), (3987.5, true)]);
    }

    #[test]
    fn a_band_past_the_last_unit_is_a_lower_bound_marked_incomplete() {
        // mid 100; 200 bps = 98..102. The ask side ends inside the band, the bid side goes past.
        let f = book_figures(
            &book(vec![
                unit(100.5, 1.0, 99.5, 2.0),
                unit(101.0, 1.0, 97.0, 1.0),
            ]),
            &[200],
        );
        assert_eq!(f.mid, 100.0);
        assert_eq!(depth(&f, 0), [(201.5, false), (199.0, true)]);
        // bids 3, asks 2: (3 − 2) / 5.
        assert_eq!(f.imbalance, 0.2);
    }

    #[test]
    fn a_single_level() {
        let f = book_figures(&book(vec![unit(101.0, 3.0, 99.0, 1.0)]), &[10, 200]);
        assert_eq!((f.mid, f.spread, f.spread_ratio), (100.0, 2.0, 0.02));
        assert_eq!(f.imbalance, -0.5);
        // 10 bps (99.9..100.1): both best levels lie beyond it, so the band is known empty.
        assert_eq!(depth(&f, 0), [(0.0, true), (0.0, true)]);
        // 200 bps (98..102): the single level is in, nothing beyond: a lower bound.
        assert_eq!(depth(&f, 1), [(303.0, false), (99.0, false)]);
    }

    #[test]
    fn an_empty_side_leaves_no_mid_and_an_empty_book_no_figures() {
        let f = book_figures(
            &book(vec![unit(101.0, 3.0, 0.0, 0.0), unit(102.0, 1.0, 0.0, 0.0)]),
            &[10],
        );
        assert!(f.mid.is_nan() && f.spread.is_nan() && f.spread_ratio.is_nan());
        assert_eq!(f.imbalance, -1.0, "only asks");
        assert!(f.depth[0][0].value.is_nan() && !f.depth[0][0].complete);
        assert!(f.depth[0][1].value.is_nan() && !f.depth[0][1].complete);

        let f = book_figures(&book(vec![]), &[10]);
        assert!(f.mid.is_nan() && f.imbalance.is_nan());
        assert!(f.depth[0][0].value.is_nan());
    }

    #[test]
    fn bands_beyond_the_maximum_are_ignored() {
        let bands = [1, 2, 3, 4, 5, 6, 7, 8, 9];
        let f = book_figures(&book(vec![unit(101.0, 1.0, 99.0, 1.0)]), &bands);
        assert_eq!(
            f.depth[MAX_DEPTH_BANDS - 1][0],
            SideDepth {
                value: 0.0,
                complete: true
            }
        );
    }

    /// The same book in SIMPLE and DEFAULT form gives the same figures, hand-computed from the
    /// recorded units.
    #[test]
    fn simple_and_list_formats_give_the_same_figures() {
        let simple = br#"{"ty":"orderbook","cd":"KRW-BTC","tms":1,"tas":3.0,"tbs":4.0,"obu":[{"ap":101.0,"bp":99.0,"as":1.0,"bs":2.0},{"ap":103.0,"bp":97.0,"as":2.0,"bs":2.0}],"st":"REALTIME"}"#;
        let default = br#"[{"type":"orderbook","code":"KRW-BTC","timestamp":1,"total_ask_size":3.0,"total_bid_size":4.0,"orderbook_units":[{"ask_price":101.0,"bid_price":99.0,"ask_size":1.0,"bid_size":2.0},{"ask_price":103.0,"bid_price":97.0,"ask_size":2.0,"bid_size":2.0}],"stream_type":"REALTIME"}]"#;
        let figures = |bytes: &[u8]| match decode_frame(bytes).remove(0).unwrap() {
            Message::Orderbook(o) => book_figures(&o.orderbook_units, &[100, 200]),
            other => panic!("not an orderbook: {other:?}"),
        };
        let f = figures(simple);
        assert_eq!(f, figures(default));
        assert_eq!((f.mid, f.spread, f.spread_ratio), (100.0, 2.0, 0.02));
        assert_eq!(f.imbalance, 1.0 / 7.0);
        // 100 bps = 99..101: ask 101 × 1, bid 99 × 2; the second levels lie beyond.
        assert_eq!(depth(&f, 0), [(101.0, true), (198.0, true)]);
        // 200 bps = 98..102: the same levels; 103 and 97 are beyond.
        assert_eq!(depth(&f, 1), [(101.0, true), (198.0, true)]);
    }
}
