//! Per-layer forward/backward time of the Fashion model's training step (batch 64, 1 thread).
use host_train::model::spec::ModelSpec;
use host_train::rng::Rng;
use host_train::train::net::Net;
use std::time::Instant;

fn main() {
    if let Some(f) = std::env::var("CHUNK_FLOATS").ok().and_then(|v| v.parse().ok()) {
        host_train::train::net::set_im2col_chunk_floats(f);
    }
    let spec = ModelSpec::from_toml(include_str!("../../models/fashion/model.toml")).unwrap();
    let mut net = Net::new(spec, 1).unwrap();
    let n = 64;
    let mut rng = Rng::new(1);
    let x: Vec<f32> = (0..n * 784).map(|_| rng.f32()).collect();
    let nl = net.layers.len();
    let (mut tf, mut tb) = (vec![f64::MAX; nl], vec![f64::MAX; nl]);
    let reps = 40;
    let mut best = f64::MAX;
    for _ in 0..reps {
        let t_rep = Instant::now();
        let mut a = x.clone();
        for (i, l) in net.layers.iter_mut().enumerate() {
            let t = Instant::now();
            a = l.forward(a, n, true, &mut rng);
            tf[i] = tf[i].min(t.elapsed().as_secs_f64());
        }
        let mut d = a.iter().map(|v| v * 1e-3).collect::<Vec<_>>();
        net.layers[0].need_input_grad = false;
        for (i, l) in net.layers.iter_mut().enumerate().rev() {
            let t = Instant::now();
            d = l.backward(&mut d, n);
            tb[i] = tb[i].min(t.elapsed().as_secs_f64());
        }
        best = best.min(t_rep.elapsed().as_secs_f64());
    }
    let tot: f64 = tf.iter().chain(&tb).sum();
    for (i, l) in net.layers.iter().enumerate() {
        println!(
            "{:>10} fwd {:7.1} µs/img  bwd {:7.1} µs/img",
            l.r.name,
            tf[i] / n as f64 * 1e6,
            tb[i] / n as f64 * 1e6
        );
    }
    println!("best batch {:.1} µs/img → {:.0} img/s", best / n as f64 * 1e6, n as f64 / best);
    println!("sum of per-layer bests {:.1} µs/img", tot / n as f64 * 1e6);
}
