//! The randomness the decision needs (new DB UIDs, the initial master choice), injected so that the
//! decision itself stays deterministic and tests can replay it.

/// Source of new UIDs and random choices.
pub trait Entropy {
    /// A new DB UID.
    fn new_uid(&mut self) -> String;
    /// A random index in `0..len` (`len` > 0).
    fn pick(&mut self, len: usize) -> usize;
}

/// Real randomness: stolon's 8-hex-character UIDs and uniform random picks.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn new_uid(&mut self) -> String {
        crate::cluster::new_uid()
    }

    fn pick(&mut self, len: usize) -> usize {
        if len == 0 {
            return 0;
        }
        let bytes = uuid::Uuid::new_v4().into_bytes();
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[..8]);
        (u64::from_le_bytes(word) % len as u64) as usize
    }
}

/// Deterministic entropy for tests, as stolon's tests do: UIDs `db<N+1>`, `db<N+2>`... and every pick 0.
#[derive(Debug, Clone)]
pub struct SequentialUids {
    last: u64,
}

impl SequentialUids {
    /// The next UID will be `db<last + 1>`.
    pub fn after(last: u64) -> Self {
        SequentialUids { last }
    }
}

impl Entropy for SequentialUids {
    fn new_uid(&mut self) -> String {
        self.last += 1;
        format!("db{}", self.last)
    }

    fn pick(&mut self, _len: usize) -> usize {
        0
    }
}
