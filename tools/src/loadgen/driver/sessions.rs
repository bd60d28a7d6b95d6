//! wss with session resumption: where a load thread keeps the TLS sessions its connections were
//! given, for its later connections to resume.
//!
//! rustls' own cache keeps 8 TLS 1.3 tickets per server, far fewer than a load thread has
//! handshakes in flight: every connection takes one ticket (a TLS 1.3 ticket is used once) and
//! brings two, but dozens of connections complete between two rounds of connects, so with 8 kept
//! most new connections would find none and make a full handshake. This store keeps up to
//! [`MAX_TICKETS`] per server and hands out the newest first (the ones the server, whose cache
//! drops its oldest sessions, most likely still knows).

use std::collections::VecDeque;
use std::sync::Mutex;

use rustls::NamedGroup;
use rustls::client::{ClientSessionStore, Tls12ClientSessionValue, Tls13ClientSessionValue};
use rustls::pki_types::ServerName;

/// TLS 1.3 tickets kept per server (the oldest go first).
const MAX_TICKETS: usize = 1024;
/// Servers remembered (a run talks to one, two with a publish URL).
const MAX_SERVERS: usize = 4;

/// One thread's TLS sessions.
#[derive(Debug, Default)]
pub(super) struct Sessions {
    servers: Mutex<Vec<(ServerName<'static>, Server)>>,
}

/// What is known of one server.
#[derive(Debug, Default)]
struct Server {
    kx_hint: Option<NamedGroup>,
    tls12: Option<Tls12ClientSessionValue>,
    /// Oldest first.
    tls13: VecDeque<Tls13ClientSessionValue>,
}

impl Sessions {
    /// Runs `f` on what is known of `name`, if anything.
    fn with<T>(&self, name: &ServerName<'_>, f: impl FnOnce(&mut Server) -> Option<T>) -> Option<T> {
        let mut servers = self.servers.lock().unwrap_or_else(|e| e.into_inner());
        servers
            .iter_mut()
            .find(|(n, _)| n == name)
            .and_then(|(_, s)| f(s))
    }

    /// Runs `f` on what is known of `name`, made known first (forgetting the server learnt
    /// first when there are too many).
    fn edit(&self, name: ServerName<'static>, f: impl FnOnce(&mut Server)) {
        let mut servers = self.servers.lock().unwrap_or_else(|e| e.into_inner());
        let at = match servers.iter().position(|(n, _)| *n == name) {
            Some(at) => at,
            None => {
                if servers.len() >= MAX_SERVERS {
                    servers.remove(0);
                }
                servers.push((name, Server::default()));
                servers.len() - 1
            }
        };
        f(&mut servers[at].1);
    }
}

impl ClientSessionStore for Sessions {
    fn set_kx_hint(&self, name: ServerName<'static>, group: NamedGroup) {
        self.edit(name, |s| s.kx_hint = Some(group));
    }

    fn kx_hint(&self, name: &ServerName<'_>) -> Option<NamedGroup> {
        self.with(name, |s| s.kx_hint)
    }

    fn set_tls12_session(&self, name: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.edit(name, |s| s.tls12 = Some(value));
    }

    fn tls12_session(&self, name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.with(name, |s| s.tls12.clone())
    }

    fn remove_tls12_session(&self, name: &ServerName<'static>) {
        self.with(name, |s| s.tls12.take());
    }

    fn insert_tls13_ticket(&self, name: ServerName<'static>, value: Tls13ClientSessionValue) {
        self.edit(name, |s| {
            if s.tls13.len() >= MAX_TICKETS {
                s.tls13.pop_front();
            }
            s.tls13.push_back(value);
        });
    }

    fn take_tls13_ticket(&self, name: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
        self.with(name, |s| s.tls13.pop_back())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_are_bounded_and_the_oldest_is_forgotten() {
        let store = Sessions::default();
        let names: Vec<ServerName<'static>> = (0..=MAX_SERVERS)
            .map(|i| ServerName::try_from(format!("s{i}.test")).unwrap())
            .collect();
        for n in &names {
            store.set_kx_hint(n.clone(), NamedGroup::X25519);
        }
        assert_eq!(store.kx_hint(&names[0]), None);
        assert_eq!(store.kx_hint(&names[MAX_SERVERS]), Some(NamedGroup::X25519));
        assert_eq!(store.servers.lock().unwrap().len(), MAX_SERVERS);
        assert!(store.take_tls13_ticket(&names[1]).is_none());
    }
}
