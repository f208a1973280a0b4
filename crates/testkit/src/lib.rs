//! `fleet-testkit`: run Fleet workers in-process (being built).
