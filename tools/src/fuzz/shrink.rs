//! Minimizing a finding: shrink the sequence (fewer frames, shorter payloads, fewer cuts and
//! pauses, a plain handshake) while the finding holds. Greedy passes, repeated until none makes
//! progress or the budget of attempts is spent; `holds` runs a candidate against the server.

use super::sequence::{Cut, Len, Mutation, Sequence};

/// Shrinks `seq` while `holds` says the finding still appears, trying at most `attempts`
/// candidates. Returns the smallest sequence found and the attempts used.
pub fn shrink(
    seq: &Sequence,
    attempts: usize,
    mut holds: impl FnMut(&Sequence) -> bool,
) -> (Sequence, usize) {
    let mut best = seq.clone();
    let mut used = 0;
    let mut try_one = |candidate: Sequence, best: &mut Sequence, used: &mut usize| -> bool {
        if *used >= attempts || candidate == *best {
            return false;
        }
        *used += 1;
        if holds(&candidate) {
            *best = candidate;
            true
        } else {
            false
        }
    };
    loop {
        let before = best.clone();
        // Whole frames: halves first, then one at a time from the end.
        let mut chunk = best.frames.len() / 2;
        while chunk >= 1 {
            let mut start = 0;
            while start + chunk <= best.frames.len() {
                let mut c = best.clone();
                c.frames.drain(start..start + chunk);
                if !try_one(c, &mut best, &mut used) {
                    start += chunk;
                }
            }
            chunk /= 2;
        }
        // Cuts and pauses.
        if !best.cuts.is_empty() {
            let mut c = best.clone();
            c.cuts.clear();
            if !try_one(c, &mut best, &mut used) {
                let mut c = best.clone();
                c.cuts.iter_mut().for_each(|k| k.pause_us = 0);
                try_one(c, &mut best, &mut used);
                let mut i = best.cuts.len();
                while i > 0 {
                    i -= 1;
                    let mut c = best.clone();
                    c.cuts.remove(i);
                    try_one(c, &mut best, &mut used);
                }
            }
        }
        // The handshake: plain, frames written with the request, no extension offered.
        for step in 0..3 {
            let mut c = best.clone();
            match step {
                0 => c.opening.mutation = Mutation::None,
                1 => c.opening.pipelined = true,
                _ => c.opening.deflate = false,
            }
            try_one(c, &mut best, &mut used);
        }
        // Payloads: empty, the first half, the second half; lengths made minimal, masks zero.
        for i in 0..best.frames.len() {
            let n = best.frames[i].payload.len();
            if n > 0 {
                let mut c = best.clone();
                c.frames[i].payload.clear();
                if !try_one(c, &mut best, &mut used) {
                    let mut c = best.clone();
                    c.frames[i].payload.truncate(n / 2);
                    if !try_one(c, &mut best, &mut used) {
                        let mut c = best.clone();
                        c.frames[i].payload.drain(..n / 2);
                        try_one(c, &mut best, &mut used);
                    }
                }
            }
            if i < best.frames.len() && best.frames[i].len != Len::Minimal {
                let mut c = best.clone();
                c.frames[i].len = Len::Minimal;
                try_one(c, &mut best, &mut used);
            }
            if i < best.frames.len() && best.frames[i].mask.is_some_and(|k| k != [0; 4]) {
                let mut c = best.clone();
                c.frames[i].mask = Some([0; 4]);
                try_one(c, &mut best, &mut used);
            }
        }
        if best == before || used >= attempts {
            break;
        }
    }
    let len = stream_len_hint(&best);
    best.cuts.retain(|c: &Cut| c.at < len);
    (best, used)
}

/// An upper bound of the stream's length, to drop cuts past it.
fn stream_len_hint(seq: &Sequence) -> usize {
    let frames: usize = seq.frames.iter().map(|f| f.payload.len() + 14).sum();
    frames + 1024
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzz::sequence::{Frame, Opening};

    fn seq(frames: Vec<Frame>) -> Sequence {
        Sequence {
            opening: Opening {
                deflate: false,
                pipelined: true,
                mutation: Mutation::ExtraFields,
            },
            frames,
            cuts: vec![
                Cut {
                    at: 5,
                    pause_us: 1000,
                },
                Cut { at: 9, pause_us: 0 },
            ],
        }
    }

    #[test]
    fn shrinks_to_the_frame_that_matters() {
        let mut frames: Vec<Frame> = (0..10)
            .map(|i| Frame::new(2, vec![i; 300], [1, 2, 3, 4]))
            .collect();
        frames[6].rsv = 3;
        let (small, used) = shrink(&seq(frames), 500, |s| s.frames.iter().any(|f| f.rsv == 3));
        assert_eq!(small.frames.len(), 1);
        assert_eq!(small.frames[0].rsv, 3);
        assert!(small.frames[0].payload.is_empty());
        assert!(small.cuts.is_empty());
        assert_eq!(small.opening.mutation, Mutation::None);
        assert!(used <= 500);
    }

    #[test]
    fn keeps_what_is_needed_and_respects_the_budget() {
        let frames: Vec<Frame> = (0..8)
            .map(|i| Frame::new(1, vec![b'a' + i; 40], [0; 4]))
            .collect();
        let (small, _) = shrink(&seq(frames.clone()), 1000, |s| {
            s.frames.iter().map(|f| f.payload.len()).sum::<usize>() >= 70
        });
        assert!(small.frames.iter().map(|f| f.payload.len()).sum::<usize>() >= 70);
        assert!(small.frames.len() <= 2);
        let (same, used) = shrink(&seq(frames.clone()), 0, |_| true);
        assert_eq!((same.frames.len(), used), (frames.len(), 0));
    }
}
