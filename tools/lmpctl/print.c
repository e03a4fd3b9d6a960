/* Text from a daemon or an event, made safe to show on the operator's terminal. */
#include <stdlib.h>

#include "ctl.h"
#include "lmp/base/text.h"

char *ctl_printable(const char *s, size_t n) {
  char *t = lmp_utf8_sanitize(s ? s : "", s ? n : 0, NULL);
  if (t == NULL)
    die("out of memory");
  unsigned char *p = (unsigned char *)t;
  for (size_t i = 0; p[i]; i++) {
    if (p[i] < 0x20 || p[i] == 0x7F)
      p[i] = '?';
    else if (p[i] == 0xC2 && p[i + 1] >= 0x80 && p[i + 1] <= 0x9F) /* C1 controls: U+0080..U+009F */
      p[i] = p[i + 1] = '?';
  }
  return t;
}
