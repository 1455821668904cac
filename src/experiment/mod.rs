//! Prompt experiments (`callq compare`, the canary): a seeded sample of stored calls scored
//! again with a variant, saved under an experiment id in tables of their own. The
//! orchestration is in `commands::compare` and `canary`, the queries in `store::experiment`;
//! this module holds the sampling and the scoring (`score.rs`).

mod score;

pub(crate) use score::{Rescore, Rescored, answered_row, failed_row, rescore};

use sha2::{Digest, Sha256};

/// `n` of `ids`, chosen by `seed` alone: the same seed and ids give the same sample on any
/// machine and version, and a bigger `n` only adds calls to a smaller one's sample.
pub fn sample(ids: &[i64], n: usize, seed: u64) -> Vec<i64> {
    let mut keyed: Vec<([u8; 8], i64)> = ids
        .iter()
        .map(|id| {
            let mut h = Sha256::new();
            h.update(seed.to_le_bytes());
            h.update(id.to_le_bytes());
            let digest = h.finalize();
            let mut key = [0u8; 8];
            key.copy_from_slice(&digest[..8]);
            (key, *id)
        })
        .collect();
    keyed.sort();
    let mut out: Vec<i64> = keyed.into_iter().take(n).map(|(_, id)| id).collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_depends_on_the_seed_only() {
        let ids: Vec<i64> = (1..=100).collect();
        let a = sample(&ids, 10, 7);
        assert_eq!(a.len(), 10);
        assert_eq!(a, sample(&ids, 10, 7));
        let mut reversed = ids.clone();
        reversed.reverse();
        assert_eq!(
            a,
            sample(&reversed, 10, 7),
            "order of the ids does not matter"
        );
        assert_ne!(a, sample(&ids, 10, 8));
        let bigger = sample(&ids, 20, 7);
        assert!(a.iter().all(|id| bigger.contains(id)));
        assert_eq!(sample(&ids[..3], 10, 7), [1, 2, 3]);
    }
}
