/*
 * Lets HotSpot print C2's machine code (-XX:+PrintAssembly, -XX:CompileCommand=print,...) with Debian's FCML
 * disassembler: the package libhsdis0-fcml exports only the old entry point decode_instructions, and JDK 25 looks
 * for decode_instructions_virtual. This forwards one to the other (the code HotSpot prints is in this process, so
 * the virtual and the real addresses are the same).
 *
 *   apt-get install -y libhsdis0-fcml
 *   mkdir -p /tmp/hsdis && gcc -shared -fPIC -O2 -o /tmp/hsdis/hsdis-amd64.so bench/probes/hsdis_shim.c -ldl
 *   LD_LIBRARY_PATH=/tmp/hsdis java -XX:+UnlockDiagnosticVMOptions \
 *       -XX:CompileCommand=print,io.epserve.model.kernel.TileKernels::fp8X8 ...
 */
#include <dlfcn.h>
#include <stdint.h>

typedef void *(*event_callback_t)(void *, const char *, void *);
typedef int (*printf_callback_t)(void *, const char *, ...);
typedef void *(*decode_t)(void *, void *, event_callback_t, void *, printf_callback_t, void *, const char *);

void *decode_instructions_virtual(uintptr_t start_va, uintptr_t end_va, unsigned char *buffer, uintptr_t length,
                                  event_callback_t event_callback, void *event_stream,
                                  printf_callback_t printf_callback, void *printf_stream, const char *options,
                                  int newline) {
    static decode_t decode;
    (void) start_va;
    (void) end_va;
    (void) newline;
    if (decode == 0) {
        void *lib = dlopen("libhsdis.so.0", RTLD_NOW);
        if (lib == 0 || (decode = (decode_t) dlsym(lib, "decode_instructions")) == 0) {
            return 0;
        }
    }
    return decode(buffer, buffer + length, event_callback, event_stream, printf_callback, printf_stream, options);
}
