//! Protocol header exchange and the SASL layer.
//!
//! Both supported clients pick ANONYMOUS whatever is offered (authorisation happens later, per
//! entity, through `$cbs` put-token). We offer ANONYMOUS, MSSBCBS and PLAIN as Service Bus does,
//! and accept ANONYMOUS and MSSBCBS — the latter means exactly "the client authenticates via
//! CBS". PLAIN is refused: the listener holds no user passwords.

use fe2o3_amqp_types::primitives::{Array, Symbol};
use fe2o3_amqp_types::sasl::{SaslCode, SaslInit, SaslMechanisms, SaslOutcome};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::{AmqpError, AmqpErrorKind};
use crate::frame::{self, TYPE_SASL};

/// `AMQP` + protocol id 0 (plain AMQP) + version 1.0.0.
pub(crate) const AMQP_HEADER: [u8; 8] = *b"AMQP\x00\x01\x00\x00";
/// `AMQP` + protocol id 3 (SASL) + version 1.0.0.
pub(crate) const SASL_HEADER: [u8; 8] = *b"AMQP\x03\x01\x00\x00";
/// Bound of SASL frames: they carry a mechanism name and a small response.
const MAX_SASL_FRAME: u32 = 64 * 1024;

/// Mechanisms offered, in preference order.
const OFFERED: [&str; 3] = ["ANONYMOUS", "MSSBCBS", "PLAIN"];

async fn read_header<R: AsyncRead + Unpin>(reader: &mut R) -> Result<[u8; 8], AmqpError> {
    let mut header = [0u8; 8];
    reader
        .read_exact(&mut header)
        .await
        .map_err(|err| AmqpError::io("reading the protocol header", err))?;
    Ok(header)
}

async fn write_all<W: AsyncWrite + Unpin>(writer: &mut W, bytes: &[u8]) -> Result<(), AmqpError> {
    writer
        .write_all(bytes)
        .await
        .map_err(|err| AmqpError::io("writing during the handshake", err))?;
    writer
        .flush()
        .await
        .map_err(|err| AmqpError::io("flushing during the handshake", err))
}

/// Runs the handshake up to (not including) the AMQP open: an optional SASL exchange, then
/// the AMQP protocol header in both directions.
pub(crate) async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
) -> Result<(), AmqpError> {
    let header = read_header(stream).await?;
    if header == AMQP_HEADER {
        return write_all(stream, &AMQP_HEADER).await;
    }
    if header != SASL_HEADER {
        // The spec's answer to an unsupported header: send the one we support, then close.
        write_all(stream, &SASL_HEADER).await?;
        return Err(AmqpError::protocol(format!(
            "unsupported protocol header {header:02x?}"
        )));
    }
    write_all(stream, &SASL_HEADER).await?;
    let mechanisms = SaslMechanisms {
        sasl_server_mechanisms: Array(OFFERED.iter().map(|m| Symbol::from(*m)).collect()),
    };
    let body = frame::to_amqp(&mechanisms, "sasl-mechanisms")?;
    write_all(stream, &frame::encode_frame(TYPE_SASL, 0, &[&body])).await?;

    let init_frame = frame::read_frame(stream, MAX_SASL_FRAME)
        .await?
        .ok_or_else(|| AmqpError::protocol("connection closed before sasl-init"))?;
    if init_frame.frame_type != TYPE_SASL {
        return Err(AmqpError::protocol(
            "expected a SASL frame carrying sasl-init",
        ));
    }
    crate::scan::value(&init_frame.body, 0, 0)
        .map_err(|why| AmqpError::protocol(format!("malformed sasl-init: {why}")))?;
    let init: SaslInit = serde_amqp::from_slice(&init_frame.body)
        .map_err(|err| AmqpError::protocol(format!("undecodable sasl-init: {err}")))?;
    let mechanism = init.mechanism.as_str();
    let accepted = mechanism == "ANONYMOUS" || mechanism == "MSSBCBS";
    let outcome = SaslOutcome {
        code: if accepted {
            SaslCode::Ok
        } else {
            SaslCode::Auth
        },
        additional_data: None,
    };
    let body = frame::to_amqp(&outcome, "sasl-outcome")?;
    write_all(stream, &frame::encode_frame(TYPE_SASL, 0, &[&body])).await?;
    if !accepted {
        return Err(AmqpError::new(
            AmqpErrorKind::Unauthorized,
            format!("SASL mechanism \"{mechanism}\" is not accepted"),
        ));
    }

    let header = read_header(stream).await?;
    if header != AMQP_HEADER {
        write_all(stream, &AMQP_HEADER).await?;
        return Err(AmqpError::protocol(format!(
            "expected the AMQP protocol header after SASL, got {header:02x?}"
        )));
    }
    write_all(stream, &AMQP_HEADER).await
}
