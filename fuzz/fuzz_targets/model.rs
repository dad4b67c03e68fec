//! Fuzz target: the generated-model entry points of both committed models (`models/*/model.rs`)
//! on arbitrary input images must return `Ok`, and their scores must equal the host executor's
//! (`QModel::run` on the same `quantized.json`), whatever the pixels.
#![no_main]

use std::sync::OnceLock;

#[allow(dead_code)]
#[rustfmt::skip]
#[path = "../../models/tiny/model.rs"]
mod tiny;

#[allow(dead_code)]
#[rustfmt::skip]
#[path = "../../models/fashion/model.rs"]
mod fashion;

fn qmodel(json: &str) -> host_train::graph::QModel {
    serde_json::from_str(json).expect("committed quantized.json parses")
}

static TINY: OnceLock<host_train::graph::QModel> = OnceLock::new();
static FASHION: OnceLock<host_train::graph::QModel> = OnceLock::new();

fn image<const N: usize>(data: &[u8]) -> [i8; N] {
    let mut x = [0i8; N];
    if !data.is_empty() {
        for (i, v) in x.iter_mut().enumerate() {
            *v = data[i % data.len()] as i8;
        }
    }
    x
}

fn host_scores(q: &host_train::graph::QModel, x: &[i8]) -> Vec<i8> {
    let plan = q.plan();
    let mut arena = vec![0i8; plan.bytes];
    let mut scores = vec![0i8; q.num_classes()];
    q.run(x, &mut arena, &mut scores).expect("host executor runs the committed model");
    scores
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (which, data) = data.split_first().map_or((0, data), |(&w, rest)| (w, rest));
    if which & 1 == 0 {
        let x = image::<{ tiny::INPUT_LEN }>(data);
        let mut arena = [0x5ai8; tiny::ARENA_BYTES];
        let mut scores = [0i8; tiny::NUM_CLASSES];
        tiny::run(&x, &mut arena, &mut scores).expect("generated tiny model runs");
        let q = TINY.get_or_init(|| qmodel(include_str!("../../models/tiny/quantized.json")));
        assert_eq!(scores.to_vec(), host_scores(q, &x), "generated code == host executor (tiny)");
    } else {
        let x = image::<{ fashion::INPUT_LEN }>(data);
        let mut arena = vec![0x5ai8; fashion::ARENA_BYTES];
        let arena: &mut [i8; fashion::ARENA_BYTES] = arena.as_mut_slice().try_into().expect("length");
        let mut scores = [0i8; fashion::NUM_CLASSES];
        fashion::run(&x, arena, &mut scores).expect("generated fashion model runs");
        let q = FASHION.get_or_init(|| qmodel(include_str!("../../models/fashion/quantized.json")));
        assert_eq!(scores.to_vec(), host_scores(q, &x), "generated code == host executor (fashion)");
    }
});
