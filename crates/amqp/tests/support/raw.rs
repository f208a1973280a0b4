//! A minimal raw AMQP peer for tests that must send what no real client would.

use fe2o3_amqp_types::definitions::{Handle, ReceiverSettleMode, Role, SenderSettleMode};
use fe2o3_amqp_types::messaging::{Source, Target, TargetArchetype};
use fe2o3_amqp_types::performatives::{
    Attach, Begin, ChannelMax, MaxFrameSize, Open, Performative,
};
use fe2o3_amqp_types::primitives::Symbol;
use fe2o3_amqp_types::sasl::SaslInit;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const SASL_HEADER: [u8; 8] = *b"AMQP\x03\x01\x00\x00";
pub const AMQP_HEADER: [u8; 8] = *b"AMQP\x00\x01\x00\x00";

pub fn frame(frame_type: u8, channel: u16, body: &[u8]) -> Vec<u8> {
    let size = (8 + body.len()) as u32;
    let mut out = size.to_be_bytes().to_vec();
    out.extend([2, frame_type]);
    out.extend(channel.to_be_bytes());
    out.extend(body);
    out
}

pub fn perf_frame(channel: u16, perf: &Performative) -> Vec<u8> {
    frame(
        0,
        channel,
        &serde_amqp::to_vec(perf).expect("encode performative"),
    )
}

/// Reads one frame: (type, channel, body). `None` at end of stream.
pub async fn read_frame(stream: &mut TcpStream) -> Option<(u8, u16, Vec<u8>)> {
    let mut header = [0u8; 8];
    stream.read_exact(&mut header).await.ok()?;
    let size = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let doff = usize::from(header[4]) * 4;
    let mut rest = vec![0u8; size - 8];
    stream.read_exact(&mut rest).await.ok()?;
    Some((
        header[5],
        u16::from_be_bytes([header[6], header[7]]),
        rest[doff - 8..].to_vec(),
    ))
}

/// Reads the next non-empty AMQP performative.
pub async fn read_perf(stream: &mut TcpStream) -> Option<Performative> {
    loop {
        let (_, _, body) = read_frame(stream).await?;
        if body.is_empty() {
            continue;
        }
        let mut rest: &[u8] = &body;
        return Some(serde_amqp::from_reader(&mut rest).expect("decode performative"));
    }
}

/// Connects and runs SASL ANONYMOUS plus the AMQP header exchange.
pub async fn connect(addr: std::net::SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(&SASL_HEADER).await.unwrap();
    let mut header = [0u8; 8];
    stream.read_exact(&mut header).await.unwrap();
    assert_eq!(header, SASL_HEADER);
    let (kind, _, _mechanisms) = read_frame(&mut stream).await.expect("sasl-mechanisms");
    assert_eq!(kind, 1);
    let init = SaslInit {
        mechanism: Symbol::from("ANONYMOUS"),
        initial_response: None,
        hostname: None,
    };
    stream
        .write_all(&frame(1, 0, &serde_amqp::to_vec(&init).unwrap()))
        .await
        .unwrap();
    let (kind, _, _outcome) = read_frame(&mut stream).await.expect("sasl-outcome");
    assert_eq!(kind, 1);
    stream.write_all(&AMQP_HEADER).await.unwrap();
    stream.read_exact(&mut header).await.unwrap();
    assert_eq!(header, AMQP_HEADER);
    stream
}

/// Connects, opens the connection and begins a session on channel 0.
pub async fn open_session(addr: std::net::SocketAddr) -> TcpStream {
    let mut stream = connect(addr).await;
    let open = Open {
        container_id: "raw".into(),
        hostname: None,
        max_frame_size: MaxFrameSize(65_536),
        channel_max: ChannelMax(1),
        idle_time_out: None,
        outgoing_locales: None,
        incoming_locales: None,
        offered_capabilities: None,
        desired_capabilities: None,
        properties: None,
    };
    stream
        .write_all(&perf_frame(0, &Performative::Open(open)))
        .await
        .unwrap();
    assert!(matches!(
        read_perf(&mut stream).await,
        Some(Performative::Open(_))
    ));
    let begin = Begin {
        remote_channel: None,
        next_outgoing_id: 0,
        incoming_window: 100,
        outgoing_window: 100,
        handle_max: Handle(10),
        offered_capabilities: None,
        desired_capabilities: None,
        properties: None,
    };
    stream
        .write_all(&perf_frame(0, &Performative::Begin(begin)))
        .await
        .unwrap();
    assert!(matches!(
        read_perf(&mut stream).await,
        Some(Performative::Begin(_))
    ));
    stream
}

/// An attach of a client sender to `address`.
pub fn sender_attach(handle: u32, address: &str) -> Performative {
    Performative::Attach(Attach {
        name: format!("raw-sender-{handle}"),
        handle: Handle(handle),
        role: Role::Sender,
        snd_settle_mode: SenderSettleMode::Mixed,
        rcv_settle_mode: ReceiverSettleMode::First,
        source: Some(Box::new(Source::builder().address("raw").build())),
        target: Some(Box::new(TargetArchetype::Target(
            Target::builder().address(address).build(),
        ))),
        unsettled: None,
        incomplete_unsettled: false,
        initial_delivery_count: Some(0),
        max_message_size: None,
        offered_capabilities: None,
        desired_capabilities: None,
        properties: None,
    })
}
