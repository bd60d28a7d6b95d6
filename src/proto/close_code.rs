//! Close status codes (RFC 6455 sections 7.4 and 11.7): a leaf that every other module may use.
//!
//! It names nothing else of `proto`, so that the error types (which map failures to codes) and
//! the close frame parser (which fails with those errors) both depend on it without depending on
//! each other.

/// A close status code (RFC 6455 section 7.4).
///
/// Every `u16` maps to exactly one variant, and back: `CloseCode::from(n).as_u16() == n`.
/// Whether a code may travel in a Close frame is [`CloseCode::is_sendable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseCode {
    /// 1000: the purpose of the connection has been fulfilled.
    Normal,
    /// 1001: the endpoint is going away (server shutdown, page navigation).
    GoingAway,
    /// 1002: the peer broke the protocol.
    ProtocolError,
    /// 1003: the endpoint received a kind of data it cannot accept.
    Unsupported,
    /// 1005: no status code was present. Reported locally, never sent.
    NoStatus,
    /// 1006: the connection closed without a Close frame. Reported locally, never sent.
    Abnormal,
    /// 1007: a message's data did not match its type (text that is not UTF-8).
    InvalidPayload,
    /// 1008: a message violated the endpoint's policy.
    PolicyViolation,
    /// 1009: a message was too big to process.
    TooBig,
    /// 1010: the client expected the server to negotiate an extension.
    MandatoryExtension,
    /// 1011: the server met an unexpected condition.
    InternalError,
    /// 1012: the service is restarting.
    ServiceRestart,
    /// 1013: try again later.
    TryAgainLater,
    /// 1014: the server, acting as a gateway, got an invalid response upstream.
    BadGateway,
    /// 1015: the TLS handshake failed. Reported locally, never sent.
    TlsHandshake,
    /// 3000-4999: codes for libraries, frameworks and applications.
    Application(u16),
    /// Any other value: reserved, never valid on the wire.
    Reserved(u16),
}

impl CloseCode {
    /// The numeric value.
    pub fn as_u16(self) -> u16 {
        match self {
            Self::Normal => 1000,
            Self::GoingAway => 1001,
            Self::ProtocolError => 1002,
            Self::Unsupported => 1003,
            Self::NoStatus => 1005,
            Self::Abnormal => 1006,
            Self::InvalidPayload => 1007,
            Self::PolicyViolation => 1008,
            Self::TooBig => 1009,
            Self::MandatoryExtension => 1010,
            Self::InternalError => 1011,
            Self::ServiceRestart => 1012,
            Self::TryAgainLater => 1013,
            Self::BadGateway => 1014,
            Self::TlsHandshake => 1015,
            Self::Application(n) | Self::Reserved(n) => n,
        }
    }

    /// Whether the code may be carried by a Close frame: 1000-1003, 1007-1014 and 3000-4999.
    ///
    /// 1005, 1006 and 1015 only describe a closure locally; everything else is reserved.
    pub fn is_sendable(self) -> bool {
        !matches!(
            self,
            Self::NoStatus | Self::Abnormal | Self::TlsHandshake | Self::Reserved(_)
        )
    }
}

impl From<u16> for CloseCode {
    fn from(n: u16) -> Self {
        match n {
            1000 => Self::Normal,
            1001 => Self::GoingAway,
            1002 => Self::ProtocolError,
            1003 => Self::Unsupported,
            1005 => Self::NoStatus,
            1006 => Self::Abnormal,
            1007 => Self::InvalidPayload,
            1008 => Self::PolicyViolation,
            1009 => Self::TooBig,
            1010 => Self::MandatoryExtension,
            1011 => Self::InternalError,
            1012 => Self::ServiceRestart,
            1013 => Self::TryAgainLater,
            1014 => Self::BadGateway,
            1015 => Self::TlsHandshake,
            3000..=4999 => Self::Application(n),
            _ => Self::Reserved(n),
        }
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> u16 {
        code.as_u16()
    }
}

impl std::fmt::Display for CloseCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.as_u16())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_u16() {
        for n in 0..=u16::MAX {
            assert_eq!(CloseCode::from(n).as_u16(), n);
        }
    }

    #[test]
    fn sendable_ranges_match_rfc_7_4() {
        for n in 0..=u16::MAX {
            let expected = matches!(n, 1000..=1003 | 1007..=1014 | 3000..=4999);
            assert_eq!(CloseCode::from(n).is_sendable(), expected, "code {n}");
        }
    }
}
