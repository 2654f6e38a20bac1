/* Embeds include/shoal.h in the controller so that compiling C source needs no installed copy
 * of the header: the controller writes it to <home>/include/shoal.h at start-up. */
    .section .rodata
    .global shoal_header_blob
    .global shoal_header_blob_end
shoal_header_blob:
    .incbin "include/shoal.h"
shoal_header_blob_end:
    .section .note.GNU-stack,"",@progbits
