//! The QEMU classification and golden programs: the shared support crate's pieces, the stack
//! reserve the link-time RAM check uses, and the classification app's `main`.

#![no_std]

pub use microcnn_fw_support::{exit, InstructionCounter, StackMeter};

include!(concat!(env!("OUT_DIR"), "/stack_reserve.rs"));

/// Defines the `main` of a classification app for a generated model module `$model` and its
/// test vectors `$vectors`: runs every embedded test image, prints each prediction, checks each
/// output against the host's bit for bit, reports accuracy and per-layer instruction counts, and
/// exits non-zero on any mismatch.
#[macro_export]
macro_rules! classify_app {
    ($model:ident, $vectors:ident) => {
        #[cortex_m_rt::entry]
        fn main() -> ! {
            use $model as model;
            use $vectors as vectors;
            let stack = $crate::StackMeter::paint();
            let Some(p) = cortex_m::Peripherals::take() else { $crate::exit(false) };
            let counter = $crate::InstructionCounter::new(p.SYST);
            // A compile-time-initialised static: the arena lives in .bss, where the linker's RAM
            // check counts it, and is never built on the stack first (as `singleton!` would,
            // which overflows a small stack without a link error).
            static ARENA: static_cell::ConstStaticCell<[i8; model::ARENA_BYTES]> =
                static_cell::ConstStaticCell::new([0; model::ARENA_BYTES]);
            let Some(arena) = ARENA.try_take() else { $crate::exit(false) };
            let mut scores = [0i8; model::NUM_CLASSES];
            let mut per_layer = [0u64; model::LAYER_NAMES.len()];
            let (mut correct, mut mismatches, mut total) = (0usize, 0usize, 0u64);
            defmt::info!(
                "model {=str}: {=usize} layers, arena {=usize} B, weights {=usize} B, {=usize} test images",
                model::LAYER_NAMES[0],
                model::LAYER_NAMES.len(),
                model::ARENA_BYTES,
                model::WEIGHT_BYTES,
                vectors::COUNT
            );
            for i in 0..vectors::COUNT {
                let start = counter.ticks();
                let mut last = start;
                let r = model::run_observed(&vectors::IMAGES[i], arena, &mut scores, |l| {
                    let now = counter.ticks();
                    per_layer[l] += counter.instructions(last, now);
                    last = now;
                });
                total += counter.instructions(start, last);
                if let Err(e) = r {
                    defmt::error!("image {=usize}: runtime error {}", i, e);
                    $crate::exit(false);
                }
                let pred = microcnn::classify::argmax_i8(&scores).unwrap_or(0);
                let label = vectors::LABELS[i] as usize;
                let exact = scores == vectors::EXPECTED[i];
                correct += (pred == label) as usize;
                mismatches += (!exact) as usize;
                defmt::info!(
                    "image {=usize}: predicted {=str}, true {=str}{=str}",
                    i,
                    model::LABELS[pred],
                    model::LABELS[label],
                    if exact { "" } else { "  <-- OUTPUT DIFFERS FROM HOST" }
                );
            }
            let n = vectors::COUNT.max(1) as u64;
            if counter.available() {
                defmt::info!("instructions per SysTick tick: {=u32}", counter.instructions_per_tick());
                for (l, name) in model::LAYER_NAMES.iter().enumerate() {
                    defmt::info!("PERF layer {=str} {=u64}", name, per_layer[l] / n);
                }
                defmt::info!("PERF inference {=u64}", total / n);
            } else {
                defmt::warn!("SysTick does not run on this machine: no instruction counts");
            }
            let stack_used = stack.used();
            defmt::info!("PERF stack {=usize}", stack_used);
            if stack_used > $crate::STACK_RESERVE {
                defmt::error!(
                    "the stack used {=usize} B, more than the {=usize} B the link-time RAM check reserves",
                    stack_used,
                    $crate::STACK_RESERVE
                );
                $crate::exit(false);
            }
            defmt::info!(
                "RESULT accuracy {=usize}/{=usize}, outputs bit-exact with host: {=usize}/{=usize}",
                correct,
                vectors::COUNT,
                vectors::COUNT - mismatches,
                vectors::COUNT
            );
            $crate::exit(mismatches == 0)
        }
    };
}
