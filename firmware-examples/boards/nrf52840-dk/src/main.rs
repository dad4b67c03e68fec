//! The example Fashion-MNIST model on a real nRF52840-DK.
//!
//! Press button 1: the board classifies the next embedded test image, shows the predicted class
//! (0–9) in binary on LEDs 1–4, and logs image, prediction, truth and cycle count over RTT
//! (defmt). The I/O goes through `embedded-hal` traits only, so `show_class` and `wait_press`
//! work unchanged with any HAL; only `main` names nRF parts.
//!
//! Flash and watch the log with probe-rs (from firmware-examples/):
//! `cargo flash-nrf52840` (see .cargo/config.toml).

#![no_std]
#![no_main]

use defmt_rtt as _;
use embedded_hal::digital::{InputPin, OutputPin};
use nrf52840_hal::{self as hal, gpio::Level};
use panic_probe as _;

#[allow(dead_code)]
#[rustfmt::skip]
#[path = "../../../../models/fashion/model.rs"]
mod model;
#[rustfmt::skip]
#[path = "../../../../models/fashion/test_vectors.rs"]
mod vectors;

/// Shows `class` in binary on four active-low LEDs (LED1 = bit 0).
fn show_class<L: OutputPin>(leds: &mut [L; 4], class: usize) -> Result<(), L::Error> {
    for (bit, led) in leds.iter_mut().enumerate() {
        if class >> bit & 1 == 1 {
            led.set_low()?;
        } else {
            led.set_high()?;
        }
    }
    Ok(())
}

/// Waits for an active-low button to be pressed and released (with a crude debounce).
fn wait_press<B: InputPin>(button: &mut B) -> Result<(), B::Error> {
    while button.is_high()? {}
    cortex_m::asm::delay(640_000); // ~10 ms at 64 MHz
    while button.is_low()? {}
    Ok(())
}

#[cortex_m_rt::entry]
fn main() -> ! {
    let (Some(p), Some(mut cp)) = (hal::pac::Peripherals::take(), cortex_m::Peripherals::take()) else {
        panic!("peripherals already taken")
    };
    cp.DCB.enable_trace();
    cp.DWT.enable_cycle_counter();
    let port0 = hal::gpio::p0::Parts::new(p.P0);
    let mut button = port0.p0_11.into_pullup_input();
    let mut leds = [
        port0.p0_13.into_push_pull_output(Level::High).degrade(),
        port0.p0_14.into_push_pull_output(Level::High).degrade(),
        port0.p0_15.into_push_pull_output(Level::High).degrade(),
        port0.p0_16.into_push_pull_output(Level::High).degrade(),
    ];
    // A compile-time-initialised static in .bss (counted by the linker's RAM check in
    // build.rs), never built on the stack first.
    static ARENA: static_cell::ConstStaticCell<[i8; model::ARENA_BYTES]> =
        static_cell::ConstStaticCell::new([0; model::ARENA_BYTES]);
    let Some(arena) = ARENA.try_take() else { panic!("arena already taken") };
    let mut scores = [0i8; model::OUTPUT_LEN];
    defmt::info!("microcnn on nRF52840-DK: press button 1 to classify the next image");
    let mut i = 0;
    loop {
        if wait_press(&mut button).is_err() {
            continue;
        }
        let start = cortex_m::peripheral::DWT::cycle_count();
        let result = model::run(&vectors::IMAGES[i], arena, &mut scores);
        let cycles = cortex_m::peripheral::DWT::cycle_count().wrapping_sub(start);
        match result.and_then(|()| microcnn::classify::argmax_i8(&scores)) {
            Ok(class) => {
                let _ = show_class(&mut leds, class);
                defmt::info!(
                    "image {=usize}: {=str} (true: {=str}), {=u32} cycles, bit-exact with host: {=bool}",
                    i,
                    model::LABELS[class],
                    model::LABELS[vectors::LABELS[i] as usize],
                    cycles,
                    scores == vectors::EXPECTED[i]
                );
            }
            Err(e) => defmt::error!("inference failed: {}", e),
        }
        i = (i + 1) % vectors::COUNT;
    }
}
