/* Uses the installed public headers and library: lists the devices. */
#include <stdio.h>
#include <reformer/reformer.h>
#include <reformer/model.h>

int main(void) {
    int n = 0;
    rf_status s = rf_device_count(&n);
    rf_config c;
    if (s == RF_OK) s = rf_config_default(&c);
    printf("%s: %d devices, default hidden_size %d\n", rf_status_str(s), n, c.hidden_size);
    return s == RF_OK && n >= 1 ? 0 : 1;
}
