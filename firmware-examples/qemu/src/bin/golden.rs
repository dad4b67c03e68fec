//! The runtime's golden kernel cases (made from TensorFlow Lite Micro) on the target: proves
//! the integer arithmetic on ARM equals the host's and TFLM's, element for element.
#![no_std]
#![no_main]

use microcnn_golden::{run, Act, Case, Op, Sample};
use microcnn_qemu::exit;

include!(concat!(env!("OUT_DIR"), "/golden_cases.rs"));

#[cortex_m_rt::entry]
fn main() -> ! {
    let mut out = [0i8; 1024];
    let (mut failed, mut elements) = (0usize, 0usize);
    for case in CASES {
        let mut ok = true;
        for s in case.samples {
            let Some(o) = out.get_mut(..s.expected.len()) else {
                defmt::error!("{=str}: output larger than the buffer", case.name);
                exit(false)
            };
            if let Err(e) = run(case, s.inputs, o, false) {
                defmt::error!("{=str}: kernel error {}", case.name, e);
                ok = false;
                continue;
            }
            for (i, (&got, &want)) in o.iter().zip(s.expected).enumerate() {
                elements += 1;
                if got != want {
                    defmt::error!("{=str} element {=usize}: got {=i8}, TFLM {=i8}", case.name, i, got, want);
                    ok = false;
                }
            }
        }
        if !ok {
            failed += 1;
        }
    }
    defmt::info!(
        "RESULT golden: {=usize}/{=usize} cases bit-exact with TFLite Micro ({=usize} elements)",
        CASES.len() - failed,
        CASES.len(),
        elements
    );
    exit(failed == 0)
}
