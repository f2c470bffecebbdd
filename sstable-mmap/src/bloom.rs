//! The bloom filter over a table's user keys.
//!
//! One 64-bit hash per key; the `k` probe positions come from double hashing
//! (`h1 + i·h2`, Kirsch and Mitzenmacher), which keeps the false-positive rate of `k`
//! independent hashes at the cost of one. A probe maps its 64-bit value onto the bit
//! array with a multiply-shift instead of a division.
//!
//! The hash is part of the file format: it must never change for a given
//! [`crate::format::VERSION`], and it reads words as little endian so every platform
//! computes the same bits.

use std::path::Path;

use bytes::Bytes;
use strata_core::{Error, Result};

use crate::format::{FILTER_TAG, SectionHandle, read_u32, section_body};

/// Largest hash count a filter may use; bounds the work a damaged filter can cause.
pub const MAX_HASHES: u32 = 30;

const K0: u64 = 0x9E37_79B9_7F4A_7C15;
const K1: u64 = 0xBF58_476D_1CE4_E5B9;
const K2: u64 = 0x94D0_49BB_1331_11EB;

#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// The filter's 64-bit hash of a user key.
#[inline]
pub fn key_hash(key: &[u8]) -> u64 {
    let mut h = K0 ^ (key.len() as u64).wrapping_mul(K2);
    let mut words = key.chunks_exact(8);
    for w in &mut words {
        let mut a = [0u8; 8];
        a.copy_from_slice(w);
        h = fold_mul(h ^ u64::from_le_bytes(a), K1);
    }
    let tail = words.remainder();
    if !tail.is_empty() {
        let mut a = [0u8; 8];
        a[..tail.len()].copy_from_slice(tail);
        h = fold_mul(h ^ u64::from_le_bytes(a), K2);
    }
    // Final avalanche (MurmurHash3 fmix64): every input bit reaches the high bits the
    // multiply-shift mapping uses.
    h ^= h >> 33;
    h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    h ^= h >> 33;
    h = h.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    h ^ (h >> 33)
}

/// The probe positions of `hash` in a filter of `bits` bits.
#[inline]
fn probes(hash: u64, k: u32, bits: u64) -> impl Iterator<Item = u64> {
    let mut h = hash;
    let delta = fold_mul(hash, K0) | 1;
    (0..k).map(move |_| {
        let bit = ((u128::from(h) * u128::from(bits)) >> 64) as u64;
        h = h.wrapping_add(delta);
        bit
    })
}

/// The hash count that minimises false positives for `bits_per_key`: `round(b·ln 2)`,
/// at least 1, at most [`MAX_HASHES`]; 0 when `bits_per_key` is 0 (no filter).
pub fn hash_count(bits_per_key: u32) -> u32 {
    if bits_per_key == 0 {
        return 0;
    }
    let k = (f64::from(bits_per_key) * std::f64::consts::LN_2).round() as u32;
    k.clamp(1, MAX_HASHES)
}

/// A bloom filter: answers "certainly absent" or "may be present" for a user key.
#[derive(Clone, PartialEq, Eq)]
pub struct BloomFilter {
    bits: Bytes,
    k: u32,
}

impl std::fmt::Debug for BloomFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BloomFilter").field("bits", &self.bit_len()).field("k", &self.k).finish()
    }
}

impl BloomFilter {
    /// Builds a filter for keys with the given [`key_hash`]es (duplicates are harmless
    /// but count towards the size) at `bits_per_key` bits per key. `bits_per_key == 0`
    /// builds no filter: [`may_contain`](Self::may_contain) then always says yes.
    pub fn from_hashes(hashes: &[u64], bits_per_key: u32) -> BloomFilter {
        let k = hash_count(bits_per_key);
        if k == 0 || hashes.is_empty() {
            return BloomFilter { bits: Bytes::new(), k };
        }
        // Small filters get at least 64 bits: with a handful of keys the rounding of
        // `n·b` would otherwise dominate the false-positive rate.
        let bits = (hashes.len() as u64).saturating_mul(u64::from(bits_per_key)).max(64);
        let bytes = usize::try_from(bits.div_ceil(8)).unwrap_or(usize::MAX);
        let mut array = vec![0u8; bytes];
        let bit_len = bytes as u64 * 8;
        for &h in hashes {
            for bit in probes(h, k, bit_len) {
                if let Some(byte) = array.get_mut((bit / 8) as usize) {
                    *byte |= 1 << (bit % 8);
                }
            }
        }
        BloomFilter { bits: Bytes::from(array), k }
    }

    /// Builds a filter over `keys` at `bits_per_key` bits per key.
    pub fn from_keys<'a>(keys: impl IntoIterator<Item = &'a [u8]>, bits_per_key: u32) -> Self {
        let hashes: Vec<u64> = keys.into_iter().map(key_hash).collect();
        Self::from_hashes(&hashes, bits_per_key)
    }

    /// A filter from its stored parts: hash count and bit array. The caller bounds `k`.
    pub(crate) fn from_parts(k: u32, bits: Bytes) -> Self {
        BloomFilter { bits, k }
    }

    /// Appends the filter's section body (hash count, bit array).
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.k.to_le_bytes());
        out.extend_from_slice(&self.bits);
    }

    /// False when `key` is certainly not among the keys the filter was built from.
    #[inline]
    pub fn may_contain(&self, key: &[u8]) -> bool {
        self.may_contain_hash(key_hash(key))
    }

    /// [`may_contain`](Self::may_contain) for a key whose [`key_hash`] is `hash`.
    #[inline]
    pub fn may_contain_hash(&self, hash: u64) -> bool {
        if self.k == 0 {
            return true;
        }
        let bits = self.bit_len();
        let array = &self.bits[..];
        probes(hash, self.k, bits)
            .all(|bit| array.get((bit / 8) as usize).is_some_and(|b| b & (1 << (bit % 8)) != 0))
    }

    /// Number of hash functions (probes per key); 0 for "no filter".
    pub fn hash_count(&self) -> u32 {
        self.k
    }

    /// Size of the bit array in bits.
    pub fn bit_len(&self) -> u64 {
        self.bits.len() as u64 * 8
    }

    /// The fraction of `absent` keys for which the filter says "may be present". Pass
    /// keys that were *not* added, and the result is the measured false-positive rate.
    pub fn measure_false_positive_rate<'a>(
        &self,
        absent: impl IntoIterator<Item = &'a [u8]>,
    ) -> f64 {
        let (mut probed, mut hits) = (0u64, 0u64);
        for key in absent {
            probed += 1;
            hits += u64::from(self.may_contain(key));
        }
        if probed == 0 { 0.0 } else { hits as f64 / probed as f64 }
    }

    /// The textbook false-positive rate `(1 - e^(-k/b))^k` of a filter with
    /// `bits_per_key` bits per key and the hash count [`hash_count`] picks.
    pub fn theoretical_false_positive_rate(bits_per_key: u32) -> f64 {
        let k = hash_count(bits_per_key);
        if k == 0 {
            return 1.0;
        }
        let k = f64::from(k);
        (1.0 - (-k / f64::from(bits_per_key)).exp()).powf(k)
    }
}

/// Checks the filter section and wraps its bit array in place.
pub(crate) fn parse_filter(
    path: &Path,
    data: &Bytes,
    handle: SectionHandle,
) -> Result<BloomFilter> {
    let body = section_body(path, data, handle, FILTER_TAG)?;
    let at = body.start as u64;
    let body = data.slice(body);
    let k = body.get(..4).map(|b| read_u32(b, 0));
    match k {
        Some(k) if k <= MAX_HASHES => Ok(BloomFilter::from_parts(k, body.slice(4..))),
        _ => Err(Error::corruption(
            path,
            at,
            format!("filter holds an invalid hash count {k:?} (at most {MAX_HASHES})"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_false_negatives() {
        let keys: Vec<Vec<u8>> = (0..2000u32).map(|i| format!("key{i}").into_bytes()).collect();
        let f = BloomFilter::from_keys(keys.iter().map(|k| &k[..]), 10);
        assert_eq!(f.hash_count(), 7);
        assert!(keys.iter().all(|k| f.may_contain(k)));
    }

    #[test]
    fn empty_and_disabled_filters() {
        let empty = BloomFilter::from_hashes(&[], 10);
        assert!(!empty.may_contain(b"x"), "a filter over no keys holds nothing");
        let off = BloomFilter::from_hashes(&[1, 2, 3], 0);
        assert!(off.may_contain(b"x"), "bits_per_key 0 disables the filter");
    }

    #[test]
    fn hash_is_stable() {
        // Part of the file format: a change here makes old filters give false negatives.
        // Pinned values cover every path of the hash: the empty key (length seed and
        // avalanche only), a tail alone, exactly one word, a word and a tail, several
        // words, and keys that differ only in length or in one bit of a word.
        let pinned: [(&[u8], u64); 9] = [
            (b"", 0x9ca0_66f1_a4ab_2eea),
            (b"a", 0xfc3d_1ae8_256f_fda5),
            (b"a\0", 0x8082_f2a7_f253_2fb0),
            (b"strata", 0x5925_f8c4_2c59_eb46),
            (b"01234567", 0x2822_771f_df6a_1522),
            (b"012345678", 0x1edd_50f0_13a7_5b4b),
            (b"01234567\x01", 0x9c4d_b7d6_9b12_1914),
            (b"0123456789abcdef", 0xb2ec_c97e_a3fd_ab8b),
            (b"the quick brown fox jumps over the lazy dog", 0x56a4_9bdf_7e26_1d89),
        ];
        for (key, want) in pinned {
            let got = key_hash(key);
            assert_eq!(
                got,
                want,
                "key {:?}: the hash changed to {got:#x}",
                String::from_utf8_lossy(key)
            );
        }
    }
}
