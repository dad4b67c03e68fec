//! What every QEMU program shares: semihosting exit, a panic handler that fails the run, an
//! instruction counter built on SysTick under `qemu -icount shift=0`, and a stack meter.
//! No build script and no memory map, so each program package picks its own.

#![no_std]

use cortex_m::peripheral::{syst::SystClkSource, SYST};
use cortex_m_semihosting::debug;
use defmt_semihosting as _;

/// Ends the QEMU run with a pass/fail exit status.
pub fn exit(pass: bool) -> ! {
    debug::exit(if pass { debug::EXIT_SUCCESS } else { debug::EXIT_FAILURE });
    #[allow(clippy::empty_loop)]
    loop {}
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    if let Some(loc) = info.location() {
        defmt::error!("panic at {=str}:{=u32}", loc.file(), loc.line());
    } else {
        defmt::error!("panic");
    }
    exit(false)
}

/// Counts instructions: SysTick ticks scaled by a factor measured on a loop of known length.
///
/// With `-icount shift=0` QEMU retires exactly one instruction per nanosecond of virtual time,
/// so SysTick ticks are proportional to instructions; the factor (40 on mps2 boards, whose
/// SysTick runs at 25 MHz) is measured at start-up rather than assumed.
pub struct InstructionCounter {
    syst: SYST,
    /// Instructions per tick × 1000 (0 when SysTick does not run on this machine).
    milli_per_tick: u64,
}

const CAL_ITERS: u32 = 200_000;

impl InstructionCounter {
    /// Starts SysTick from the processor clock and calibrates it.
    pub fn new(mut syst: SYST) -> Self {
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(0x00FF_FFFF);
        syst.clear_current();
        syst.enable_counter();
        let mut c = InstructionCounter { syst, milli_per_tick: 0 };
        let t0 = c.ticks();
        spin(CAL_ITERS);
        let dt = Self::elapsed_ticks(t0, c.ticks()) as u64;
        // The loop retires two instructions per iteration.
        c.milli_per_tick = (2 * CAL_ITERS as u64 * 1000 + dt / 2).checked_div(dt).unwrap_or(0);
        c
    }

    /// The raw down-counter.
    pub fn ticks(&self) -> u32 {
        SYST::get_current()
    }

    fn elapsed_ticks(start: u32, end: u32) -> u32 {
        start.wrapping_sub(end) & 0x00FF_FFFF
    }

    /// `true` if SysTick runs (it does on every machine used here; reported otherwise).
    pub fn available(&self) -> bool {
        self.milli_per_tick != 0
    }

    /// Instructions per SysTick tick, rounded.
    pub fn instructions_per_tick(&self) -> u32 {
        ((self.milli_per_tick + 500) / 1000) as u32
    }

    /// Instructions between two `ticks()` readings (less than 2^24 ticks apart).
    pub fn instructions(&self, start: u32, end: u32) -> u64 {
        Self::elapsed_ticks(start, end) as u64 * self.milli_per_tick / 1000
    }

    /// Gives SysTick back.
    pub fn free(self) -> SYST {
        self.syst
    }
}

/// The word painted over the free stack by [`StackMeter::paint`].
const PAINT: u32 = 0x5AA5_C33C;

extern "C" {
    /// End of `.bss` (cortex-m-rt's linker script): the lowest address the stack may reach.
    static mut __ebss: u32;
}

/// Measures the deepest the stack has gone: [`StackMeter::paint`] fills the free RAM between
/// the end of the statics and the current stack pointer with a pattern, and
/// [`StackMeter::used`] finds the lowest word that is no longer the pattern.
pub struct StackMeter {
    top: usize,
}

impl StackMeter {
    /// Paints the free stack; `top` is the initial stack pointer (the end of RAM).
    #[inline(never)]
    pub fn paint() -> StackMeter {
        let sp = cortex_m::register::msp::read() as usize;
        let bottom = core::ptr::addr_of_mut!(__ebss) as usize;
        // Leave 256 bytes below the current frame untouched: this function's own frame.
        let end = sp.saturating_sub(256);
        let mut p = bottom.next_multiple_of(4);
        while p + 4 <= end {
            // SAFETY: [__ebss, sp − 256) is RAM that no static occupies (cortex-m-rt places
            // .bss below __ebss) and that the stack has not reached yet (it grows down from
            // sp); writing aligned words there changes nothing anyone reads.
            unsafe { core::ptr::write_volatile(p as *mut u32, PAINT) };
            p += 4;
        }
        StackMeter { top: stack_top() }
    }

    /// Bytes of stack used since [`StackMeter::paint`], at most.
    pub fn used(&self) -> usize {
        let bottom = core::ptr::addr_of_mut!(__ebss) as usize;
        let mut p = bottom.next_multiple_of(4);
        // SAFETY: reads aligned words of the same RAM range the paint wrote (between the end
        // of the statics and the stack top), all of which is mapped RAM.
        while p < self.top && unsafe { core::ptr::read_volatile(p as *const u32) } == PAINT {
            p += 4;
        }
        self.top - p
    }
}

/// The initial stack pointer: the first word of the vector table.
fn stack_top() -> usize {
    extern "C" {
        static _stack_start: u32;
    }
    core::ptr::addr_of!(_stack_start) as usize
}

/// A loop of exactly `2·n` instructions (`subs` + `bne`).
#[inline(never)]
fn spin(n: u32) {
    // SAFETY: a register-only countdown loop; it touches no memory and no flags the compiler
    // relies on (`nostack`, flags clobbered by default).
    unsafe {
        core::arch::asm!("1:", "subs {0}, #1", "bne 1b", inout(reg) n => _, options(nomem, nostack));
    }
}

/// A small seeded pseudo-random generator (xorshift32) for the on-target tests and benchmarks:
/// the same seed gives the same data on every core.
pub struct Rng(pub u32);

impl Rng {
    /// The next 32 random bits.
    pub fn next_u32(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        self.0
    }

    /// A value in `0..n` (`n ≥ 1`).
    pub fn below(&mut self, n: u32) -> usize {
        (self.next_u32() % n.max(1)) as usize
    }

    /// An `i8`, often −128 or 127.
    pub fn int8(&mut self) -> i8 {
        match self.next_u32() % 8 {
            0 => i8::MIN,
            1 => i8::MAX,
            _ => self.next_u32() as i8,
        }
    }

    /// Fills `v` with values in `−max..=max`.
    pub fn fill_within(&mut self, v: &mut [i8], max: i32) {
        for x in v {
            *x = ((self.next_u32() % (2 * max as u32 + 1)) as i32 - max) as i8;
        }
    }
}
