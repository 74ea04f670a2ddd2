//! Runs of ASCII digits read eight bytes at a time: how many of a word's bytes lead with a digit,
//! and their value, in a few word-wide operations and no branch per digit. Upbit's numbers (a
//! price of up to nine digits, a size of one digit and eight places) take one or two words a
//! part, where a loop over the digits mispredicts its exit once per number.

/// The run of ASCII digits at `b[i..]` folded into `mantissa` (wrapping: the caller counts the
/// digits and refuses a run too long for a `u64`), and where the run ends.
#[inline(always)]
pub(super) fn digit_run(b: &[u8], mut i: usize, mut mantissa: u64) -> (usize, u64) {
    while let Some(chunk) = b.get(i..i + 8) {
        let (n, value) = leading_digits(u64::from_le_bytes(chunk.try_into().unwrap_or_default()));
        mantissa = mantissa.wrapping_mul(POW10[n]).wrapping_add(value);
        i += n;
        if n < 8 {
            return (i, mantissa);
        }
    }
    // The last few bytes of the frame.
    while let Some(d) = b.get(i).map(|c| c.wrapping_sub(b'0')).filter(|d| *d < 10) {
        mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(d));
        i += 1;
    }
    (i, mantissa)
}

/// Powers of ten within a `u64`.
pub(super) const POW10: [u64; 20] = {
    let mut powers = [1u64; 20];
    let mut i = 1;
    while i < powers.len() {
        powers[i] = powers[i - 1] * 10;
        i += 1;
    }
    powers
};

/// How many of the eight bytes of `word` (the first in its lowest byte) lead with an ASCII
/// digit, and the value of those digits.
#[inline(always)]
fn leading_digits(word: u64) -> (usize, u64) {
    // Each byte less '0': a digit's byte is now its value, 0 to 9. Any other byte either wrapped
    // (its high bit set) or is 10 or more, which adding 0x76 carries into the high bit. A borrow
    // or carry only reaches bytes above the one that made it, so the lowest flagged byte is
    // exact, and every byte below it is a digit's value.
    let values = word.wrapping_sub(0x3030_3030_3030_3030);
    let others = (values | values.wrapping_add(0x7676_7676_7676_7676)) & 0x8080_8080_8080_8080;
    let n = (others.trailing_zeros() / 8) as usize;
    if n == 0 {
        return (0, 0);
    }
    // The n digits moved to the top bytes, zeros below them: an eight-digit number with
    // leading zeros, folded pairwise (two digits, four, eight).
    let digits = values << (64 - 8 * n);
    let pairs = (digits.wrapping_mul(10) + (digits >> 8)) & 0x00ff_00ff_00ff_00ff;
    let quads = (pairs.wrapping_mul(100) + (pairs >> 16)) & 0x0000_ffff_0000_ffff;
    let eight = (quads.wrapping_mul(10_000) + (quads >> 32)) & 0xffff_ffff;
    (n, eight)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `leading_digits` means, one byte at a time.
    fn leading_digits_by_bytes(bytes: &[u8; 8]) -> (usize, u64) {
        let n = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
        let value = bytes[..n]
            .iter()
            .fold(0, |v, b| v * 10 + u64::from(b - b'0'));
        (n, value)
    }

    #[test]
    fn leading_digits_stop_at_the_first_other_byte_wherever_it_stands() {
        // Every byte value as the stop, at every place, after digits that vary by place and
        // before bytes that would borrow or carry (a borrow or carry reaches only upward).
        for stop in 0..=255u8 {
            for at in 0..=8 {
                for after in [b'0', b'9', 0x00, 0xff, b'/', b':', 0x8a] {
                    let mut bytes = [after; 8];
                    for (i, b) in bytes.iter_mut().enumerate().take(at) {
                        *b = b'0' + ((i * 7 + usize::from(stop)) % 10) as u8;
                    }
                    if at < 8 {
                        bytes[at] = stop;
                    }
                    assert_eq!(
                        leading_digits(u64::from_le_bytes(bytes)),
                        leading_digits_by_bytes(&bytes),
                        "{:?}",
                        String::from_utf8_lossy(&bytes)
                    );
                }
            }
        }
        assert_eq!(
            leading_digits(u64::from_le_bytes(*b"99999999")),
            (8, 99_999_999)
        );
        assert_eq!(leading_digits(u64::from_le_bytes(*b"00000001")), (8, 1));
    }
}
