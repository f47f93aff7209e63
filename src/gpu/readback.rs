//! Async readback: map a buffer and await the callback; works natively and in the browser.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use crate::error::{Error, Result};
use crate::gpu::GpuContext;

#[derive(Default)]
struct Slot {
    result: Option<std::result::Result<(), wgpu::BufferAsyncError>>,
    waker: Option<Waker>,
}

/// Resolves when the map callback has fired.
struct MapFuture(Arc<Mutex<Slot>>);

impl Future for MapFuture {
    type Output = std::result::Result<(), wgpu::BufferAsyncError>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match slot.result.take() {
            Some(r) => Poll::Ready(r),
            None => {
                slot.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// Reads `len` f32 values from the start of a MAP_READ buffer.
pub async fn read_f32(ctx: &GpuContext, buffer: &wgpu::Buffer, len: usize) -> Result<Vec<f32>> {
    let raw = read_bytes(ctx, buffer, (len * 4) as u64).await?;
    Ok(raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

/// Reads the first `bytes` bytes of a MAP_READ buffer.
pub async fn read_bytes(ctx: &GpuContext, buffer: &wgpu::Buffer, bytes: u64) -> Result<Vec<u8>> {
    if bytes == 0 {
        return Ok(Vec::new());
    }
    let slot = Arc::new(Mutex::new(Slot::default()));
    let s2 = slot.clone();
    buffer.map_async(wgpu::MapMode::Read, ..bytes, move |r| {
        let mut s = s2.lock().unwrap_or_else(|p| p.into_inner());
        s.result = Some(r);
        if let Some(w) = s.waker.take() {
            w.wake();
        }
    });
    // Natively nothing drives the callback but a poll; in the browser the event loop does.
    #[cfg(not(target_arch = "wasm32"))]
    ctx.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| Error::device("waiting for the GPU", e))?;
    #[cfg(target_arch = "wasm32")]
    let _ = ctx;
    MapFuture(slot).await.map_err(|e| Error::device("reading results back", e))?;
    let out = {
        let view = buffer.get_mapped_range(..bytes).map_err(|e| Error::device("mapping the results for reading", e))?;
        view.to_vec()
    };
    buffer.unmap();
    Ok(out)
}
