//! Integration tests of prereg (filled in by the next commit).

fn main() {}
