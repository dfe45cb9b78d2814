//! Waiters (placeholder, filled in below).
