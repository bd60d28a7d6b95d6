//! The `c10k` command line.

fn main() {
    println!(
        "c10k {}: the engine and its commands are not built yet",
        env!("CARGO_PKG_VERSION")
    );
}
