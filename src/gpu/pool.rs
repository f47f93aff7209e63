//! A bounded pool of storage buffers, so forward plans reuse memory instead of allocating.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Free buffers by (size class, usage); holds at most `max_free_bytes` idle.
pub struct BufferPool {
    free: Mutex<Free>,
    max_free_bytes: u64,
    /// Buffers created because none of the class was free: flat once a workload is warm.
    created: AtomicU64,
}

#[derive(Default)]
struct Free {
    lists: HashMap<(u64, u32), Vec<wgpu::Buffer>>,
    bytes: u64,
}

/// Sizes are rounded up to one of eight classes per power of two (at most 12.5% waste).
pub fn size_class(size: u64) -> u64 {
    let size = size.max(256);
    let highest_bit = 1u64 << (63 - size.leading_zeros());
    let step = (highest_bit / 8).max(256);
    size.div_ceil(step) * step
}

impl BufferPool {
    pub fn new(max_free_bytes: u64) -> Self {
        BufferPool { free: Mutex::new(Free::default()), max_free_bytes, created: AtomicU64::new(0) }
    }

    /// A buffer of at least `size` bytes with `usage`, reused when one is free.
    pub fn acquire(self: &Arc<Self>, device: &wgpu::Device, size: u64, usage: wgpu::BufferUsages, label: &str) -> PooledBuffer {
        let class = size_class(size);
        let key = (class, usage.bits());
        let reused = {
            let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
            let buf = free.lists.get_mut(&key).and_then(Vec::pop);
            if buf.is_some() {
                free.bytes -= class;
            }
            buf
        };
        let buffer = reused.unwrap_or_else(|| {
            self.created.fetch_add(1, Ordering::Relaxed);
            device.create_buffer(&wgpu::BufferDescriptor { label: Some(label), size: class, usage, mapped_at_creation: false })
        });
        PooledBuffer { buffer: Some(buffer), pool: self.clone() }
    }

    fn release(&self, buffer: wgpu::Buffer) {
        let size = buffer.size();
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        if free.bytes + size > self.max_free_bytes {
            buffer.destroy();
            return;
        }
        free.bytes += size;
        free.lists.entry((size, buffer.usage().bits())).or_default().push(buffer);
    }

    /// How many buffers the pool has created so far (a reuse does not count).
    pub fn created(&self) -> u64 {
        self.created.load(Ordering::Relaxed)
    }

    /// Bytes held by idle buffers.
    pub fn free_bytes(&self) -> u64 {
        self.free.lock().map(|f| f.bytes).unwrap_or(0)
    }
}

/// A buffer on loan from the pool; it goes back when dropped.
pub struct PooledBuffer {
    buffer: Option<wgpu::Buffer>,
    pool: Arc<BufferPool>,
}

impl std::ops::Deref for PooledBuffer {
    type Target = wgpu::Buffer;
    fn deref(&self) -> &wgpu::Buffer {
        self.buffer.as_ref().expect("buffer present until drop")
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        if let Some(b) = self.buffer.take() {
            self.pool.release(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::size_class;

    #[test]
    fn size_classes_cover_the_request_with_bounded_waste() {
        for s in [1u64, 255, 256, 257, 1000, 4096, 4097, 1 << 20, (1 << 20) + 1, 123_456_789] {
            let c = size_class(s);
            assert!(c >= s && c.is_multiple_of(4));
            assert!(c <= (s.max(256) as f64 * 1.125) as u64 + 256, "{s} -> {c}");
        }
    }
}
