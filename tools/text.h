/* Byte-level tokens for `reformer eval` and `reformer sample` (see text.c). */
#ifndef RF_TEXT_H
#define RF_TEXT_H

#include <stdint.h>
#include <stdio.h>

int text_is_bytes(int64_t vocab);
int32_t text_encode_byte(unsigned char b, int64_t vocab);
void text_print_token(FILE *f, int32_t id, int64_t vocab);

#endif
