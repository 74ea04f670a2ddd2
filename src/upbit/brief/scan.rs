//! A one-pass reader of a plain market message: the brief's fast path.
//!
//! Upbit's messages are flat JSON objects of plain ASCII strings and numbers (an orderbook adds
//! one array of flat objects), so reading them takes far less than a general parser: each key is
//! matched once, the fields the metrics need are converted, and every other known field is only
//! checked for its shape (a number's grammar, a string's quotes), never converted.
//!
//! It reads only what is plainly valid and refuses (`None`) everything else: an escape or a
//! non-ASCII byte in a string, a number beyond `f64` or over 300 characters, an array or
//! object where none belongs, a duplicate key, a missing required field, a value of the wrong
//! shape, trailing bytes. Whatever it refuses goes to the full decode, so the reader needs to be
//! no more than *as strict* as the wire types, and it is stricter; numbers convert to the same
//! `f64` (both round correctly).

use super::digits::{digit_run, POW10};

pub(super) struct Scanner<'a> {
    pub b: &'a [u8],
    pub i: usize,
}

impl<'a> Scanner<'a> {
    #[inline(always)]
    pub fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    #[inline(always)]
    pub fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    #[inline(always)]
    pub fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// `null`, consumed; false (nothing consumed) for anything else.
    pub fn null(&mut self) -> bool {
        let null = self.peek() == Some(b'n') && self.b[self.i..].starts_with(b"null");
        if null {
            self.i += 4;
        }
        null
    }

    /// A string of ASCII without escapes or control characters, as its bytes.
    #[inline(always)]
    pub fn bytes(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let rest = &self.b[self.i..];
        let end = plain_len(rest);
        if rest.get(end) != Some(&b'"') {
            return None;
        }
        self.i += end + 1;
        Some(&rest[..end])
    }

    /// A string as [`bytes`](Self::bytes) reads it.
    pub fn string(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.bytes()?).ok()
    }

    /// A number in JSON's grammar that reads as a finite `f64`, at most 300 characters, as its
    /// text.
    pub fn number(&mut self) -> Option<&'a [u8]> {
        self.ws();
        let start = self.i;
        if self.b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        match self.b.get(self.i)? {
            b'0' => self.i += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            let before = self.i;
            self.digits();
            if self.i == before {
                return None;
            }
        }
        let exponent = matches!(self.b.get(self.i), Some(b'e' | b'E'));
        if exponent {
            self.i += 1;
            if let Some(b'+' | b'-') = self.b.get(self.i) {
                self.i += 1;
            }
            let before = self.i;
            self.digits();
            if self.i == before {
                return None;
            }
        }
        if self.i - start > 300 {
            return None;
        }
        let text = &self.b[start..self.i];
        // Only an exponent can take a short number beyond f64, which serde refuses.
        if exponent && !as_f64(text).is_some_and(f64::is_finite) {
            return None;
        }
        Some(text)
    }

    /// Past a run of digits; their value, unread, is dropped by the compiler.
    pub fn digits(&mut self) {
        self.i = digit_run(self.b, self.i, 0).0;
    }

    /// A number as the `f64` it denotes. Up to 19 digits without an exponent (nearly all of
    /// Upbit's) it is read and converted in one pass, eight digits at a time; anything longer
    /// goes the long way.
    pub fn f64(&mut self) -> Option<f64> {
        self.ws();
        let (b, start) = (self.b, self.i);
        let negative = b.get(start) == Some(&b'-');
        let whole = start + usize::from(negative);
        let (mut i, mut mantissa) = digit_run(b, whole, 0);
        let mut digits = i - whole;
        if digits == 0 || (digits > 1 && b[whole] == b'0') {
            return None;
        }
        let mut scale = 0;
        if b.get(i) == Some(&b'.') {
            let (end, fraction) = digit_run(b, i + 1, 0);
            scale = end - (i + 1);
            if scale == 0 {
                return None;
            }
            digits += scale;
            i = end;
            // A fraction of zeros (Upbit pads prices: `142009000.00000000`) leaves a whole
            // number, with neither the zeros to strip nor a division.
            if fraction == 0 {
                scale = 0;
            } else {
                let shift = POW10.get(scale).copied().unwrap_or(0);
                mantissa = mantissa.wrapping_mul(shift).wrapping_add(fraction);
            }
        }
        // Nineteen digits cannot overflow the u64; more, or an exponent, take the long way.
        if digits > 19 || matches!(b.get(i), Some(b'e' | b'E')) {
            return as_f64(self.number()?);
        }
        self.i = i;
        Some(clinger(negative, mantissa, scale).unwrap_or_else(|| {
            // Checked by the scan above: plain digits, a point, a sign.
            as_f64(&b[start..i]).unwrap_or(f64::NAN)
        }))
    }

    pub fn opt_f64(&mut self) -> Option<Option<f64>> {
        if self.null() {
            return Some(None);
        }
        self.f64().map(Some)
    }

    /// A number checked, not converted (or `null`).
    pub fn opt_number(&mut self) -> Option<()> {
        if !self.null() {
            self.number()?;
        }
        Some(())
    }

    /// A plain string's bytes (ASCII, so UTF-8 without checking again), or `null`.
    pub fn opt_bytes(&mut self) -> Option<Option<&'a [u8]>> {
        if self.null() {
            return Some(None);
        }
        self.bytes().map(Some)
    }

    pub fn opt_text(&mut self) -> Option<Option<&'a str>> {
        if self.null() {
            return Some(None);
        }
        self.string().map(Some)
    }

    /// Digits only, within `u64` (or `null`).
    pub fn opt_u64(&mut self) -> Option<Option<u64>> {
        if self.null() {
            return Some(None);
        }
        // Digits only (a sign, fraction or exponent is refused), no leading zero, within u64.
        let start = self.i;
        let mut value: u64 = 0;
        while let Some(&b) = self.b.get(self.i).filter(|b| b.is_ascii_digit()) {
            value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
            self.i += 1;
        }
        let digits = self.i - start;
        let next = self.b.get(self.i).copied();
        if digits == 0
            || (digits > 1 && self.b[start] == b'0')
            || matches!(next, Some(b'.' | b'e' | b'E'))
        {
            return None;
        }
        Some(Some(value))
    }

    pub fn opt_bool(&mut self) -> Option<Option<bool>> {
        if self.null() {
            return Some(None);
        }
        for (word, value) in [(&b"true"[..], true), (b"false", false)] {
            if self.b[self.i..].starts_with(word) {
                self.i += word.len();
                return Some(Some(value));
            }
        }
        None
    }

    /// One of `words` (an enum's variants), or `null`.
    pub fn opt_word(&mut self, words: &[&[u8]]) -> Option<Option<usize>> {
        if self.null() {
            return Some(None);
        }
        let text = self.bytes()?;
        words.iter().position(|w| *w == text).map(Some)
    }

    /// The value of a key the wire type does not know: any scalar.
    pub fn skip(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.bytes().map(drop),
            b't' | b'f' => self.opt_bool().map(drop),
            b'n' => self.null().then_some(()),
            _ => self.number().map(drop),
        }
    }

    /// An object: `field` is called with each key, the scanner before its value, and must read
    /// the value. Fields are numbered by `field`'s answer so a duplicate is refused.
    pub fn object(
        &mut self,
        mut field: impl FnMut(&mut Self, &'a [u8]) -> Option<()>,
    ) -> Option<()> {
        self.eat(b'{')?;
        if self.peek()? == b'}' {
            self.i += 1;
            return Some(());
        }
        loop {
            let key = self.bytes()?;
            self.eat(b':')?;
            field(self, key)?;
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }
}

/// Marks field `n` as seen; `None` when it was already (a duplicate key, which serde refuses).
pub(super) fn once(seen: &mut u64, n: u32) -> Option<()> {
    let bit = 1u64 << n;
    (*seen & bit == 0).then(|| *seen |= bit)
}

/// How many bytes at the start of `rest` may stand in a plain string: up to the first quote,
/// backslash, control character or non-ASCII byte. Eight bytes at a time.
#[inline(always)]
fn plain_len(rest: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A byte below `n` sets its high bit here. A borrow can also flag bytes above a flagged
    // one, never below it, so the lowest flag is exact: the first stop in the word.
    let below = |w: u64, n: u8| w.wrapping_sub(ONES * u64::from(n)) & !w;
    let mut i = 0;
    while let Some(chunk) = rest.get(i..i + 8) {
        let w = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        let (quote, slash) = (w ^ (ONES * u64::from(b'"')), w ^ (ONES * u64::from(b'\\')));
        let stops = (below(quote, 1) | below(slash, 1) | below(w, 0x20) | w) & HIGH;
        if stops != 0 {
            return i + (stops.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    i + rest[i..]
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || !(0x20..0x80).contains(&b))
        .unwrap_or(rest.len() - i)
}

/// A number's text (checked by [`Scanner::number`]) as the `f64` it denotes, correctly rounded.
///
/// Most of Upbit's numbers take Clinger's fast path: an integer mantissa below 2^53 and a power
/// of ten up to 10^22 are both exact in an `f64`, so their quotient is the correctly rounded
/// value (what `str::parse` and serde_json's `float_roundtrip` give). Others are parsed in full.
pub(super) fn as_f64(text: &[u8]) -> Option<f64> {
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let (mut mantissa, mut scale, mut fraction) = (0u64, 0usize, false);
    let mut fast = true;
    for &b in digits {
        match b {
            b'0'..=b'9' => match mantissa
                .checked_mul(10)
                .and_then(|m| m.checked_add(u64::from(b - b'0')))
            {
                Some(m) => {
                    mantissa = m;
                    scale += usize::from(fraction);
                }
                None => {
                    fast = false;
                    break;
                }
            },
            b'.' => fraction = true,
            _ => {
                fast = false;
                break;
            }
        }
    }
    if fast {
        if let Some(value) = clinger(negative, mantissa, scale) {
            return Some(value);
        }
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// `±mantissa / 10^scale` when one exact division gives it (see [`as_f64`]).
fn clinger(negative: bool, mut mantissa: u64, mut scale: usize) -> Option<f64> {
    const POWERS: [f64; 23] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
        1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    ];
    while scale > 0 && mantissa.is_multiple_of(10) {
        mantissa /= 10;
        scale -= 1;
    }
    if mantissa >= 1 << 53 || scale >= POWERS.len() {
        return None;
    }
    // A whole number (most prices once the zeros are stripped) needs no division, whose
    // latency is most of a short number's cost.
    let value = if scale == 0 {
        mantissa as f64
    } else {
        mantissa as f64 / POWERS[scale]
    };
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `plain_len` means, one byte at a time.
    fn plain_len_by_bytes(rest: &[u8]) -> usize {
        rest.iter()
            .position(|&b| b == b'"' || b == b'\\' || !(0x20..0x80).contains(&b))
            .unwrap_or(rest.len())
    }

    #[test]
    fn plain_len_stops_at_the_first_stop_byte_wherever_it_stands() {
        // Every byte value as the stop (or not), at every place of two words and a tail, after
        // a run of plain bytes and before bytes that would also stop (a borrow from a stop flags
        // bytes above it, never below).
        for stop in 0..=255u8 {
            for at in 0..20 {
                for after in [b'a', b'"', 0x00, 0xff, 0x1f, b'\\'] {
                    let mut text = vec![b'K'; 20];
                    text[at] = stop;
                    for b in &mut text[at + 1..] {
                        *b = after;
                    }
                    assert_eq!(
                        plain_len(&text),
                        plain_len_by_bytes(&text),
                        "stop {stop:#04x} at {at}, then {after:#04x}"
                    );
                }
            }
        }
        assert_eq!(plain_len(b""), 0);
        assert_eq!(plain_len(b"KRW-BTC"), 7, "no stop: all of it");
        assert_eq!(plain_len(b"KRW-BTC-LONGER-THAN-8"), 21);
    }
}
