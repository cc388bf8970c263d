//! Which MD5 the release receiver and client should use (issue 12): the
//! `md-5` crate's portable Rust, its assembly backend (`md5-asm`, what
//! `md-5`'s `asm` feature switches to) and OpenSSL's (the `openssl` crate;
//! libcrypto is linked anyway, for git2). Each hashes 1 MiB buffers, the
//! size of the chunks the receiver hashes; `md5sum` runs at about
//! 690 MB/s on the development machine for comparison.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use md5::{Digest, Md5};

const LEN: usize = 1024 * 1024;

fn data() -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(7);
    (0..LEN).map(|_| rng.u8(..)).collect()
}

fn md5(c: &mut Criterion) {
    let data = data();
    let mut group = c.benchmark_group("md5 of 1 MiB");
    group.throughput(Throughput::Bytes(LEN as u64));
    group.bench_function("md-5 (portable)", |b| {
        b.iter(|| Md5::digest(black_box(&data)));
    });
    group.bench_function("md5-asm (md-5's asm feature)", |b| {
        // The compression function alone, over the same bytes as 64-byte
        // blocks (padding the last block is negligible at this size).
        let blocks: Vec<[u8; 64]> = data
            .chunks_exact(64)
            .map(|block| block.try_into().expect("64 bytes"))
            .collect();
        b.iter(|| {
            let mut state = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];
            md5_asm::compress(&mut state, black_box(&blocks));
            state
        });
    });
    group.bench_function("openssl (what rp-devops uses)", |b| {
        b.iter(|| {
            let mut hasher = rp_devops::release::digest::Md5Hasher::new();
            hasher.update(black_box(&data));
            hasher.finish_hex()
        });
    });
    group.finish();
}

criterion_group!(benches, md5);
criterion_main!(benches);
