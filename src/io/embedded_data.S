/* The CLIP BPE merges file (MIT, data/LICENSE-openai-clip) embedded in the binary,
 * so the tokenizer needs no file at run time. Symbols: bpe_vocab_gz, bpe_vocab_gz_end. */
    .section .rodata
    .global bpe_vocab_gz
    .global bpe_vocab_gz_end
    .balign 16
bpe_vocab_gz:
    .incbin "data/bpe_simple_vocab_16e6.txt.gz"
bpe_vocab_gz_end:
    .byte 0
    .section .note.GNU-stack,"",@progbits
