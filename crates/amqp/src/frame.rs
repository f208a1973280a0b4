//! Frame codec: the 8-byte frame header, AMQP and SASL frame bodies, bounded reads.
//!
//! A frame is `size:u32 doff:u8 type:u8 channel:u16`, then `doff*4 - 8` bytes of extended header
//! (ignored), then the body. An AMQP body is one described performative followed, for a
//! transfer, by payload bytes; an empty body is a heartbeat.

use bytes::Bytes;
use fe2o3_amqp_types::performatives::Performative;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::error::{AmqpError, AmqpErrorKind};

/// Frame type of AMQP frames.
pub(crate) const TYPE_AMQP: u8 = 0x00;
/// Frame type of SASL frames.
pub(crate) const TYPE_SASL: u8 = 0x01;
/// Size of the fixed frame header.
pub(crate) const HEADER_LEN: usize = 8;
/// The smallest max-frame-size a peer may negotiate (AMQP 1.0 §2.7.1 MIN-MAX-FRAME-SIZE).
pub(crate) const MIN_MAX_FRAME_SIZE: u32 = 512;

/// One frame as read off the wire, before its body is decoded.
#[derive(Debug)]
pub(crate) struct RawFrame {
    pub frame_type: u8,
    pub channel: u16,
    pub body: Bytes,
}

/// Reads one frame, refusing frames larger than `max_size` before reading their body.
/// `Ok(None)` is a clean end of stream between frames.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max_size: u32,
) -> Result<Option<RawFrame>, AmqpError> {
    let mut header = [0u8; HEADER_LEN];
    match reader.read_exact(&mut header).await {
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(err) => return Err(AmqpError::io("reading a frame header", err)),
    }
    let size = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    let doff = header[4];
    let frame_type = header[5];
    let channel = u16::from_be_bytes([header[6], header[7]]);
    if (size as usize) < HEADER_LEN {
        return Err(AmqpError::protocol(format!(
            "frame size {size} is smaller than the frame header"
        )));
    }
    if size > max_size {
        return Err(AmqpError::new(
            AmqpErrorKind::LimitExceeded,
            format!("frame size {size} exceeds the max-frame-size {max_size}"),
        ));
    }
    let data_offset = usize::from(doff) * 4;
    if data_offset < HEADER_LEN || data_offset > size as usize {
        return Err(AmqpError::protocol(format!(
            "frame data offset {doff} is outside the frame of {size} bytes"
        )));
    }
    if frame_type != TYPE_AMQP && frame_type != TYPE_SASL {
        return Err(AmqpError::protocol(format!(
            "unknown frame type {frame_type:#04x}"
        )));
    }
    let mut rest = vec![0u8; size as usize - HEADER_LEN];
    reader
        .read_exact(&mut rest)
        .await
        .map_err(|err| AmqpError::io("reading a frame body", err))?;
    let body = Bytes::from(rest).slice(data_offset - HEADER_LEN..);
    Ok(Some(RawFrame {
        frame_type,
        channel,
        body,
    }))
}

/// Whether `buffered` starts with a whole frame, so reading the next frame needs no more input.
pub(crate) fn holds_whole_frame(buffered: &[u8]) -> bool {
    let Some(header) = buffered.get(..HEADER_LEN) else {
        return false;
    };
    let size = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    buffered.len() >= size
}

/// Splits an AMQP frame body into its performative and payload; `None` for a heartbeat.
pub(crate) fn decode_amqp(body: &Bytes) -> Result<Option<(Performative, Bytes)>, AmqpError> {
    if body.is_empty() {
        return Ok(None);
    }
    // Scan first: it bounds nesting (the decoder recurses without limit) and finds where the
    // performative ends and the payload begins.
    let end = crate::scan::value(body, 0, 0)
        .map_err(|why| AmqpError::protocol(format!("malformed performative: {why}")))?;
    let performative: Performative = serde_amqp::from_slice(&body[..end])
        .map_err(|err| AmqpError::protocol(format!("undecodable performative: {err}")))?;
    Ok(Some((performative, body.slice(end..))))
}

/// Encodes a frame of `frame_type` on `channel` from already encoded body parts.
pub(crate) fn encode_frame(frame_type: u8, channel: u16, parts: &[&[u8]]) -> Vec<u8> {
    let body_len: usize = parts.iter().map(|p| p.len()).sum();
    let size = HEADER_LEN + body_len;
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&(size as u32).to_be_bytes());
    out.push(2);
    out.push(frame_type);
    out.extend_from_slice(&channel.to_be_bytes());
    for part in parts {
        out.extend_from_slice(part);
    }
    out
}

/// Serializes an AMQP value (performative, SASL frame, message section).
pub(crate) fn to_amqp<T: Serialize>(value: &T, what: &str) -> Result<Vec<u8>, AmqpError> {
    serde_amqp::to_vec(value)
        .map_err(|err| AmqpError::protocol(format!("cannot encode {what}: {err}")))
}

/// An empty AMQP frame: the heartbeat.
pub(crate) fn heartbeat() -> Vec<u8> {
    encode_frame(TYPE_AMQP, 0, &[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use fe2o3_amqp_types::definitions::Handle;
    use fe2o3_amqp_types::performatives::Transfer;
    use serde_bytes::ByteBuf;

    fn transfer() -> Performative {
        Performative::Transfer(Transfer {
            handle: Handle(3),
            delivery_id: Some(7),
            delivery_tag: Some(ByteBuf::from(vec![1, 2, 3])),
            message_format: Some(0),
            settled: Some(false),
            more: false,
            rcv_settle_mode: None,
            state: None,
            resume: false,
            aborted: false,
            batchable: false,
        })
    }

    #[tokio::test]
    async fn a_transfer_round_trips_with_its_payload() {
        let perf = to_amqp(&transfer(), "transfer").unwrap();
        let bytes = encode_frame(TYPE_AMQP, 5, &[&perf, b"payload"]);
        let frame = read_frame(&mut bytes.as_slice(), 1024)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(frame.channel, 5);
        let (decoded, payload) = decode_amqp(&frame.body).unwrap().unwrap();
        assert_eq!(decoded, transfer());
        assert_eq!(&payload[..], b"payload");
    }

    #[tokio::test]
    async fn oversized_frames_are_refused_before_their_body_is_read() {
        let bytes = encode_frame(TYPE_AMQP, 0, &[&[0u8; 600]]);
        let err = read_frame(&mut bytes.as_slice(), 512).await.unwrap_err();
        assert_eq!(err.kind(), AmqpErrorKind::LimitExceeded);
        assert!(err.to_string().contains("608"), "{err}");
    }

    #[tokio::test]
    async fn a_bad_data_offset_is_a_protocol_error() {
        let mut bytes = encode_frame(TYPE_AMQP, 0, &[&[0u8; 4]]);
        bytes[4] = 200;
        let err = read_frame(&mut bytes.as_slice(), 512).await.unwrap_err();
        assert_eq!(err.kind(), AmqpErrorKind::Protocol);
    }

    #[test]
    fn garbage_bodies_do_not_panic() {
        for body in [
            &[0x00u8, 0x53, 0x10, 0xff][..],
            &[0xde, 0xad, 0xbe, 0xef],
            &[0x00],
        ] {
            assert!(decode_amqp(&Bytes::copy_from_slice(body)).is_err());
        }
    }

    #[test]
    fn a_frame_is_whole_only_once_all_its_bytes_are_buffered() {
        let bytes = encode_frame(TYPE_AMQP, 0, &[b"body"]);
        assert!(holds_whole_frame(&bytes));
        assert!(!holds_whole_frame(&bytes[..bytes.len() - 1]));
        assert!(!holds_whole_frame(&bytes[..HEADER_LEN - 1]));
        assert!(!holds_whole_frame(&[]));
    }

    #[test]
    fn an_empty_body_is_a_heartbeat() {
        assert!(decode_amqp(&Bytes::new()).unwrap().is_none());
    }
}
