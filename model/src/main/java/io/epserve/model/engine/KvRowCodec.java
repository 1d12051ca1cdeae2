package io.epserve.model.engine;

import io.epserve.model.format.Bf16;
import io.epserve.model.format.Fp4E2m1;
import io.epserve.model.format.Fp8E4m3;
import io.epserve.model.format.QuantSim;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * The compact byte layouts of cached rows. They hold exactly the values the reference simulates, so decoding gives
 * back the reference's bf16 row bit for bit (spec §5.1).
 *
 * <ul>
 *   <li>KV row (window and main compressed entries): nope dims as FP8 e4m3 codes, one E8M0 scale byte per 64 nope
 *       dims, then the rope dims as bf16 (little-endian).</li>
 *   <li>Indexer key: 128 FP4 codes packed two per byte (low nibble = even dim), one E8M0 scale byte per 32 dims.</li>
 * </ul>
 */
public final class KvRowCodec {
    public static final int KV_BLOCK = 64;
    public static final int KEY_BLOCK = 32;

    private static final float[] FP8 = Fp8E4m3.table();
    private static final float[] FP4 = Fp4E2m1.table();

    /*
     * Attention decodes every listed row of every token at every step (the window alone is 128 rows per layer), so
     * decodeKv runs vectorised where the preferred vectors hold 8 or 16 ints: e4m3 code c as float bits
     * (sign << 31 | (c & 0x7f) << 20) is the code's value times 2^-120 (subnormal codes land on float subnormals),
     * so one exact multiply by 2^120 gives the table's value and a second the block scale, as the scalar loop does.
     */
    private static final VectorSpecies<Integer> IS = IntVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Float> FS = FloatVector.SPECIES_PREFERRED;
    private static final int VL = IS.length();
    private static final boolean VECTOR = VL == 16 || VL == 8;
    private static final VectorSpecies<Byte> BS = VL == 16 ? ByteVector.SPECIES_128 : ByteVector.SPECIES_64;
    private static final VectorSpecies<Byte> BS2 = VL == 16 ? ByteVector.SPECIES_256 : ByteVector.SPECIES_128;

    private final int headDim;
    private final int nope;
    private final int keyDim;
    private final byte[] codes;
    private final int[] exps;
    private final boolean vectorKv;

    public KvRowCodec(int headDim, int ropeDim, int keyDim) {
        this.headDim = headDim;
        this.nope = headDim - ropeDim;
        this.keyDim = keyDim;
        this.codes = new byte[Math.max(headDim, keyDim)];
        this.exps = new int[Math.max(headDim, keyDim)];
        this.vectorKv = VECTOR && nope % KV_BLOCK == 0 && (headDim - nope) % VL == 0;
    }

    public int kvRowBytes() {
        return nope + nope / KV_BLOCK + 2 * (headDim - nope);
    }

    public int keyRowBytes() {
        return keyDim / 2 + keyDim / KEY_BLOCK;
    }

    /**
     * FP8-quantises the nope dims of a bf16 row (the reference's in-place KV round trip) and stores it; x is left
     * unchanged.
     */
    public void encodeKv(float[] x, int off, byte[] dst, int dstOff) {
        QuantSim.fp8Quantize(x, off, nope, KV_BLOCK, codes, 0, exps, 0);
        System.arraycopy(codes, 0, dst, dstOff, nope);
        int p = dstOff + nope;
        for (int b = 0; b < nope / KV_BLOCK; b++) {
            dst[p++] = (byte) (exps[b] + 127);
        }
        for (int i = nope; i < headDim; i++) {
            short s = Bf16.bits(x[off + i]);
            dst[p++] = (byte) s;
            dst[p++] = (byte) (s >>> 8);
        }
    }

    public void decodeKv(byte[] src, int srcOff, float[] dst, int dstOff) {
        if (vectorKv && srcOff >= 0 && srcOff + kvRowBytes() <= src.length && dstOff >= 0
                && dstOff + headDim <= dst.length) {
            decodeKvVector(src, srcOff, dst, dstOff);
            return;
        }
        int sp = srcOff + nope;
        for (int b = 0; b < nope / KV_BLOCK; b++) {
            float scale = Math.scalb(1.0f, (src[sp + b] & 0xff) - 127);
            int base = b * KV_BLOCK;
            for (int i = 0; i < KV_BLOCK; i++) {
                dst[dstOff + base + i] = FP8[src[srcOff + base + i] & 0xff] * scale;
            }
        }
        int p = sp + nope / KV_BLOCK;
        for (int i = nope; i < headDim; i++) {
            int bits = (src[p] & 0xff) | (src[p + 1] & 0xff) << 8;
            dst[dstOff + i] = Float.intBitsToFloat(bits << 16);
            p += 2;
        }
    }

    /** {@link #decodeKv} with the same values bit for bit (KV_BLOCK and the rope dims are multiples of VL). */
    private void decodeKvVector(byte[] src, int srcOff, float[] dst, int dstOff) {
        int sp = srcOff + nope;
        for (int b = 0; b < nope / KV_BLOCK; b++) {
            float scale = Math.scalb(1.0f, (src[sp + b] & 0xff) - 127);
            int base = b * KV_BLOCK;
            for (int i = 0; i < KV_BLOCK; i += VL) {
                IntVector c = (IntVector) ByteVector.fromArray(BS, src, srcOff + base + i)
                        .convertShape(VectorOperators.B2I, IS, 0);
                IntVector mag = c.and(0x7f);
                FloatVector v = c.and(0x80).lanewise(VectorOperators.LSHL, 24)
                        .or(mag.lanewise(VectorOperators.LSHL, 20))
                        .reinterpretAsFloats().mul(0x1p120f).mul(scale);
                v.blend(Float.NaN, mag.eq(0x7f).cast(FS)).intoArray(dst, dstOff + base + i);
            }
        }
        int p = sp + nope / KV_BLOCK;
        for (int i = nope; i + VL <= headDim; i += VL) {
            ((IntVector) ByteVector.fromArray(BS2, src, p).reinterpretAsShorts()
                    .convertShape(VectorOperators.S2I, IS, 0))
                    .lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats().intoArray(dst, dstOff + i);
            p += 2 * VL;
        }
    }

    /** FP4-quantises a bf16 indexer key (the reference's FP4 round trip) and stores it. */
    public void encodeKey(float[] x, int off, byte[] dst, int dstOff) {
        QuantSim.fp4Quantize(x, off, keyDim, KEY_BLOCK, codes, 0, exps, 0);
        for (int i = 0; i < keyDim; i += 2) {
            dst[dstOff + i / 2] = (byte) ((codes[i] & 0xf) | (codes[i + 1] & 0xf) << 4);
        }
        int p = dstOff + keyDim / 2;
        for (int b = 0; b < keyDim / KEY_BLOCK; b++) {
            dst[p + b] = (byte) (exps[b] + 127);
        }
    }

    public void decodeKey(byte[] src, int srcOff, float[] dst, int dstOff) {
        int sp = srcOff + keyDim / 2;
        for (int i = 0; i < keyDim; i++) {
            int b = src[srcOff + i / 2];
            int code = (i & 1) == 0 ? b & 0xf : (b >>> 4) & 0xf;
            dst[dstOff + i] = FP4[code] * Math.scalb(1.0f, (src[sp + i / KEY_BLOCK] & 0xff) - 127);
        }
    }
}
