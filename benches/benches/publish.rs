//! Criterion benches: evbus against tokio broadcast and a crossbeam fan-out,
//! in the same binary and the same run.
//!
//! - `per_delivery`: publish a burst into K subscriptions, drain on the same
//!   thread (ns per delivery = time / (burst × K)).
//! - `full`: the subscribers never drain (ns per publish).
//! - `no_subscribers`: K = 0 (ns per publish).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use evbus_benches::{
    CrossbeamFanout, EvbusFanout, Fanout, Payload64, TokioFanout, burst_then_drain,
};

const BURST: usize = 64;

/// Registers one bench per peer (evbus, tokio broadcast, crossbeam fan-out)
/// of payload `$t` in `$group`, with id `NAME/k`: `$f` is a fresh fan-out of
/// that peer with `$k` subscribers of `$capacity` each, which `$routine`
/// benches on the `Bencher` `$b`.
macro_rules! peers {
    ($group:expr, $t:ty, $k:expr, $capacity:expr, |$b:ident, $f:ident| $routine:block) => {
        peers!(
            @each $group, $t, $k, $capacity, |$b, $f| $routine,
            EvbusFanout<$t>, TokioFanout<$t>, CrossbeamFanout<$t>
        )
    };
    (@each $group:expr, $t:ty, $k:expr, $capacity:expr, |$b:ident, $f:ident| $routine:block,
     $($peer:ty),+) => {
        $(
            $group.bench_with_input(
                BenchmarkId::new(<$peer as Fanout<$t>>::NAME, $k),
                &$k,
                |$b, &k| {
                    let mut $f = <$peer>::new(k, $capacity);
                    $routine
                },
            );
        )+
    };
}

fn per_delivery_for<T: Clone + Send + Default + 'static>(c: &mut Criterion, payload: &str) {
    let mut group = c.benchmark_group(format!("per_delivery/{payload}"));
    for k in [1usize, 4, 16] {
        group.throughput(Throughput::Elements((BURST * k) as u64));
        peers!(group, T, k, BURST, |b, f| {
            let value = T::default();
            b.iter(|| black_box(burst_then_drain(&mut f, &value, BURST)));
        });
    }
    group.finish();
}

fn full_for<T: Clone + Send + Default + 'static>(c: &mut Criterion, payload: &str) {
    let mut group = c.benchmark_group(format!("full/{payload}"));
    group.throughput(Throughput::Elements(1));
    for k in [1usize, 4, 16] {
        peers!(group, T, k, 16, |b, f| {
            for _ in 0..16 {
                f.publish(T::default());
            }
            let value = T::default();
            b.iter(|| black_box(f.publish(value.clone())));
        });
    }
    group.finish();
}

fn no_subscribers(c: &mut Criterion) {
    let mut group = c.benchmark_group("no_subscribers");
    group.throughput(Throughput::Elements(1));
    let mut e = EvbusFanout::<u64>::new(0, 16);
    group.bench_function("evbus", |b| b.iter(|| black_box(e.publish(black_box(1)))));
    let mut t = TokioFanout::<u64>::new(0, 16);
    group.bench_function("tokio-broadcast", |b| {
        b.iter(|| black_box(t.publish(black_box(1))))
    });
    let mut x = CrossbeamFanout::<u64>::new(0, 16);
    group.bench_function("crossbeam-fanout", |b| {
        b.iter(|| black_box(x.publish(black_box(1))))
    });
    group.finish();
}

fn base(c: &mut Criterion) {
    // Harness overhead: an empty iteration.
    c.bench_function("base", |b| b.iter(|| black_box(0u64)));
}

fn per_delivery(c: &mut Criterion) {
    per_delivery_for::<u64>(c, "u64");
    per_delivery_for::<Payload64>(c, "64B");
}

fn full(c: &mut Criterion) {
    full_for::<u64>(c, "u64");
    full_for::<Payload64>(c, "64B");
}

criterion_group!(benches, base, per_delivery, full, no_subscribers);
criterion_main!(benches);
