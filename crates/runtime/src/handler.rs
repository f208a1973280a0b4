//! The handler API: what a worker author writes.
//!
//! A message handler is an async function `(envelope, &mut HandlerContext<P>) -> Result<Outcome,
//! HandlerError>`; a timer handler gets a [`TimerTick`] instead of an envelope. Handlers never
//! settle messages: the runtime decides from the result (see [`crate::Disposition`]).

use fleet_envelope::Envelope;
use futures::future::BoxFuture;

use crate::context::HandlerContext;
use crate::handler_error::{HandlerError, Outcome};
use crate::timer::TimerTick;

/// What every handler returns.
pub type HandlerResult = Result<Outcome, HandlerError>;

/// Handles one event type. Implemented for closures of the shape
/// `|env, ctx| Box::pin(my_async_fn(env, ctx))`.
pub trait Handler<P>: Send + Sync + 'static {
    /// Runs the handler for one envelope.
    fn handle<'a>(
        &'a self,
        envelope: &'a Envelope,
        ctx: &'a mut HandlerContext<P>,
    ) -> BoxFuture<'a, HandlerResult>;
}

impl<P, F> Handler<P> for F
where
    F: for<'a> Fn(&'a Envelope, &'a mut HandlerContext<P>) -> BoxFuture<'a, HandlerResult>
        + Send
        + Sync
        + 'static,
{
    fn handle<'a>(
        &'a self,
        envelope: &'a Envelope,
        ctx: &'a mut HandlerContext<P>,
    ) -> BoxFuture<'a, HandlerResult> {
        self(envelope, ctx)
    }
}

/// Handles one timer's ticks.
pub trait TimerHandler<P>: Send + Sync + 'static {
    /// Runs the handler for one window.
    fn tick<'a>(
        &'a self,
        tick: &'a TimerTick,
        ctx: &'a mut HandlerContext<P>,
    ) -> BoxFuture<'a, HandlerResult>;
}

impl<P, F> TimerHandler<P> for F
where
    F: for<'a> Fn(&'a TimerTick, &'a mut HandlerContext<P>) -> BoxFuture<'a, HandlerResult>
        + Send
        + Sync
        + 'static,
{
    fn tick<'a>(
        &'a self,
        tick: &'a TimerTick,
        ctx: &'a mut HandlerContext<P>,
    ) -> BoxFuture<'a, HandlerResult> {
        self(tick, ctx)
    }
}
