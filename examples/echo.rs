//! The smallest embedding: an echo server on 127.0.0.1:9001.
//!
//! `cargo run --release --example echo`, then open http://127.0.0.1:9001/ or connect a client.

use c10k::proto::Message;
use c10k::{ConnId, Ctx, Handler, Server, ServerConfig};

struct Echo;

impl Handler for Echo {
    type State = ();

    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, _state: &mut Self::State, msg: Message<'_>) {
        let _ = ctx.send(id, msg.kind(), msg.as_bytes());
    }
}

fn main() -> std::io::Result<()> {
    let server = Server::bind(ServerConfig::default(), |_shard| Echo)?;
    println!("echo server on ws://{}/", server.local_addr());
    server.run()
}
