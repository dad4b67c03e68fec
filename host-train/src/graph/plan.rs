//! The static memory plan: one arena, tensor lifetimes over the DAG.

use super::*;

/// The static memory plan over the graph. Tensors are numbered 0 (the model input) and `i + 1`
/// (the output of layer `i`); every tensor, the input and the scores included (as TFLite Micro
/// keeps them), gets an arena offset such that tensors alive at the same time never overlap. A
/// tensor lives from its producer to its last consumer (the input from the first layer, the
/// scores at the last), over any DAG of branches and merges. Placement is first-fit at the
/// lowest free offset, in several orders (largest first, as TFLite Micro's greedy planner,
/// longest-lived first, execution order, then seeded shuffles); the smallest arena wins. For a
/// chain it is the largest input + output pair of any layer, the minimum for a sequential
/// schedule without in-place layers.
#[derive(Clone, Debug, PartialEq)]
pub struct ArenaPlan {
    /// Arena size in bytes.
    pub bytes: usize,
    /// Offset of each tensor in the arena.
    pub offset: Vec<usize>,
    /// The most bytes that are alive at once during any layer (a lower bound for any plan).
    pub peak_live: usize,
}

impl QModel {
    /// Plans the arena (see [`ArenaPlan`]).
    pub fn plan(&self) -> ArenaPlan {
        let n = self.layers.len();
        let tensors = n + 1;
        // Lifetime of tensor t: [producer, last consumer], in layer steps.
        let mut last_use: Vec<usize> = (0..tensors).map(|t| t.saturating_sub(1)).collect();
        for i in 0..n {
            for t in self.inputs_of(i) {
                last_use[t] = last_use[t].max(i);
            }
        }
        let life = |t: usize| (t.saturating_sub(1), last_use[t]);
        let peak_live = (0..n)
            .map(|i| (0..tensors).filter(|&t| life(t).0 <= i && i <= life(t).1).map(|t| self.tensor_len(t)).sum())
            .max()
            .unwrap_or(0);
        // First-fit placement in a given order.
        let place = |order: &[usize]| -> (usize, Vec<usize>) {
            let mut offset: Vec<Option<usize>> = vec![None; tensors];
            let mut bytes = 0;
            for &t in order {
                let (s, e) = life(t);
                let len = self.tensor_len(t);
                let mut busy: Vec<(usize, usize)> = (0..tensors)
                    .filter(|&u| u != t)
                    .filter_map(|u| offset[u].map(|o| (u, o)))
                    .filter(|&(u, _)| {
                        let (us, ue) = life(u);
                        us <= e && s <= ue
                    })
                    .map(|(u, o)| (o, o + self.tensor_len(u)))
                    .collect();
                busy.sort_unstable();
                let mut at = 0;
                for (bs, be) in busy {
                    if at + len <= bs {
                        break;
                    }
                    at = at.max(be);
                }
                offset[t] = Some(at);
                bytes = bytes.max(at + len);
            }
            (bytes, offset.into_iter().map(|o| o.unwrap_or(0)).collect())
        };
        // A few classic orders, then deterministic pseudo-random ones; the smallest arena wins
        // (first found on ties, so the plan is reproducible). Chains reach the optimum at once.
        let base: Vec<usize> = (0..tensors).collect();
        let mut orders: Vec<Vec<usize>> = Vec::new();
        let mut by_size = base.clone();
        by_size.sort_by_key(|&t| (std::cmp::Reverse(self.tensor_len(t)), t));
        orders.push(by_size);
        orders.push(base.clone());
        let mut by_length = base.clone();
        by_length
            .sort_by_key(|&t| (std::cmp::Reverse(life(t).1 - life(t).0), std::cmp::Reverse(self.tensor_len(t)), t));
        orders.push(by_length);
        let mut best = place(&orders[0]);
        for o in &orders[1..] {
            let cand = place(o);
            if cand.0 < best.0 {
                best = cand;
            }
        }
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut shuffled = base;
        for _ in 0..400 {
            if best.0 <= peak_live {
                break;
            }
            for i in (1..shuffled.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                shuffled.swap(i, (state % (i as u64 + 1)) as usize);
            }
            let cand = place(&shuffled);
            if cand.0 < best.0 {
                best = cand;
            }
        }
        let (bytes, offset) = best;
        ArenaPlan { bytes, offset, peak_live }
    }
}
