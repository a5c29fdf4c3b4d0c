/* Byte-level text <-> token ids, as the HF enwik8 Reformer: id = byte + 2
 * (0 is padding, 1 end of sequence). Needs a vocabulary of at least 258;
 * smaller (test) models get bytes folded into [2, V) and show ids. */
#include <stdio.h>
#include "text.h"

int text_is_bytes(int64_t vocab) { return vocab >= 258; }

int32_t text_encode_byte(unsigned char b, int64_t vocab) {
    return text_is_bytes(vocab) ? (int32_t)b + 2 : (int32_t)(2 + b % (vocab - 2));
}

void text_print_token(FILE *f, int32_t id, int64_t vocab) {
    if (text_is_bytes(vocab)) {
        if (id >= 2) fputc(id - 2, f);
    } else {
        fprintf(f, "[%d]", id);
    }
}
