//! The committed generated models: compiled here on the host, they must reproduce the committed
//! expected outputs (which the QEMU firmware also checks), match the quantized model run through
//! the planned arena, never touch memory beyond the arena, and match their generator.

use host_train::graph::QModel;
use std::path::PathBuf;

#[allow(dead_code)]
#[rustfmt::skip]
#[path = "../../models/fashion/model.rs"]
mod fashion;
#[allow(dead_code)]
#[rustfmt::skip]
#[path = "../../models/fashion/test_vectors.rs"]
mod fashion_vectors;
#[allow(dead_code)]
#[rustfmt::skip]
#[path = "../../models/tiny/model.rs"]
mod tiny;
#[allow(dead_code)]
#[rustfmt::skip]
#[path = "../../models/tiny/test_vectors.rs"]
mod tiny_vectors;

fn model_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models").join(name)
}

fn qmodel(name: &str) -> QModel {
    serde_json::from_str(&std::fs::read_to_string(model_dir(name).join("quantized.json")).unwrap()).unwrap()
}

macro_rules! check_model {
    ($test:ident, $name:literal, $model:ident, $vectors:ident) => {
        #[test]
        fn $test() {
            let q = qmodel($name);
            let plan = q.plan();
            assert_eq!(plan.bytes, $model::ARENA_BYTES);
            // The planned arena is no larger than the most bytes alive during any layer (for a
            // plain chain: the largest input + output pair); no kernel needs scratch.
            assert!(plan.bytes <= plan.peak_live, "arena {} > peak live {}", plan.bytes, plan.peak_live);
            const POISON: i8 = 0x5A;
            for i in 0..$vectors::COUNT {
                // Generated code, compiled on the host.
                let mut arena = [0i8; $model::ARENA_BYTES];
                let mut scores = [0i8; $model::OUTPUT_LEN];
                $model::run(&$vectors::IMAGES[i], &mut arena, &mut scores).unwrap();
                assert_eq!(
                    scores,
                    $vectors::EXPECTED[i],
                    "image {i}: generated code differs from the committed expectation"
                );
                // The quantized model through the planner, with poisoned memory beyond the arena.
                let mut big = vec![POISON; plan.bytes + 256];
                let mut s2 = vec![0i8; q.num_classes()];
                let (arena2, guard) = big.split_at_mut(plan.bytes);
                q.run(&$vectors::IMAGES[i], arena2, &mut s2).unwrap();
                assert!(guard.iter().all(|&b| b == POISON), "memory beyond the arena was written");
                assert_eq!(s2, scores);
            }
        }
    };
}

check_model!(fashion_model_matches_expected_outputs_and_plan, "fashion", fashion, fashion_vectors);
check_model!(tiny_model_matches_expected_outputs_and_plan, "tiny", tiny, tiny_vectors);

#[test]
fn committed_generated_code_has_not_drifted() {
    for name in ["fashion", "tiny"] {
        host_train::report::emit_cmd(&model_dir(name), true, None, None).unwrap();
    }
}

#[test]
fn emit_check_reports_drift_and_budgets_name_the_layer() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(model_dir("tiny").join("quantized.json"), tmp.path().join("quantized.json")).unwrap();
    // Over budget: error names the numbers, and nothing is written.
    let e = host_train::report::emit_cmd(tmp.path(), false, Some(100), None).unwrap_err().to_string();
    assert!(e.contains("over the budget of 100") && e.contains("largest layer"), "{e}");
    let e = host_train::report::emit_cmd(tmp.path(), false, None, Some(1000)).unwrap_err().to_string();
    assert!(e.contains("RAM") && e.contains("layer"), "{e}");
    assert!(!tmp.path().join("model.rs").exists());
    let (_, code) = host_train::report::emit_cmd(tmp.path(), false, None, None).unwrap();
    assert!(!tmp.path().join("model.rs").exists(), "emit_cmd stages, the CLI writes");
    let path = tmp.path().join("model.rs");
    std::fs::write(&path, code.unwrap()).unwrap();
    host_train::report::emit_cmd(tmp.path(), true, None, None).unwrap();
    let edited = std::fs::read_to_string(&path).unwrap().replacen("pub const", "pub  const", 1);
    std::fs::write(&path, edited).unwrap();
    let e = host_train::report::emit_cmd(tmp.path(), true, None, None).unwrap_err().to_string();
    assert!(e.contains("drifted"), "{e}");
}
