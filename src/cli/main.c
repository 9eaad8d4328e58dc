#include <stdio.h>
int main(void) { puts("forget"); return 0; }
