//! Turning class scores into answers: argmax and top-k.

use crate::error::{Error, Result};

/// The index of the largest score; the first one on ties (TFLite's `ARG_MAX`).
///
/// # Errors
///
/// [`Error::InvalidCount`] for an empty slice.
pub fn argmax_i8(scores: &[i8]) -> Result<usize> {
    let mut best: Option<(usize, i8)> = None;
    for (i, &s) in scores.iter().enumerate() {
        match best {
            Some((_, b)) if s <= b => {}
            _ => best = Some((i, s)),
        }
    }
    best.map(|(i, _)| i).ok_or(Error::InvalidCount)
}

/// The `K` best `(class, score)` pairs, best first; equal scores keep the lower class first.
/// Needs no heap: the result is a `heapless::Vec` of capacity `K`.
///
/// # Errors
///
/// [`Error::InvalidCount`] if `K == 0` or `K > scores.len()`.
pub fn top_k_i8<const K: usize>(scores: &[i8]) -> Result<heapless::Vec<(usize, i8), K>> {
    if K == 0 || K > scores.len() {
        return Err(Error::InvalidCount);
    }
    let mut best: heapless::Vec<(usize, i8), K> = heapless::Vec::new();
    for (i, &s) in scores.iter().enumerate() {
        // Position after every entry that is at least as good (stable for ties).
        let pos = best.iter().position(|&(_, b)| s > b).unwrap_or(best.len());
        if pos >= K {
            continue;
        }
        if best.is_full() {
            best.pop();
        }
        // Cannot fail: one slot was freed above if the vector was full.
        let _ = best.insert(pos, (i, s));
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_first_on_ties() {
        assert_eq!(argmax_i8(&[1, 5, 5, -3]), Ok(1));
        assert_eq!(argmax_i8(&[-128]), Ok(0));
        assert_eq!(argmax_i8(&[]), Err(Error::InvalidCount));
    }

    #[test]
    fn top_k_sorted_and_stable() {
        let t = top_k_i8::<3>(&[3, 9, -1, 9, 4]).unwrap();
        assert_eq!(t.as_slice(), &[(1, 9), (3, 9), (4, 4)]);
        assert_eq!(top_k_i8::<0>(&[1]), Err(Error::InvalidCount));
        assert_eq!(top_k_i8::<3>(&[1, 2]), Err(Error::InvalidCount));
    }
}
