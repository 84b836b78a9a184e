# cmake -DINPUT=file -DOUTPUT=file.cc -DNAME=kSymbol -P embed_bytes.cmake: writes INPUT's bytes as
# `extern const unsigned char NAME[]` and `extern const unsigned long NAMESize` (cmake/bpf_program.cmake).
file(READ ${INPUT} bytes HEX)
string(LENGTH "${bytes}" hex_length)
math(EXPR size "${hex_length} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${bytes}")
# About 16 bytes a line.
string(REGEX REPLACE "((0x..,){16})" "\\1\n" bytes "${bytes}")
file(WRITE ${OUTPUT} "// Generated from ${INPUT} by cmake/embed_bytes.cmake. Do not edit.\n"
     "extern const unsigned char ${NAME}[];\nextern const unsigned long ${NAME}Size;\n"
     "alignas(8) const unsigned char ${NAME}[] = {\n${bytes}\n};\n"
     "const unsigned long ${NAME}Size = ${size};\n")
