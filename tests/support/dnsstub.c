#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
/* dnsstub ADDR IP: a DNS server on ADDR:53 (UDP) answering every query with one A record,
   IP: a test's "DNS server in a container" (busybox has none) */
int main(int argc, char **argv) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {0};
    struct in_addr ip;
    if (argc != 3 || !inet_aton(argv[1], &a.sin_addr) || !inet_aton(argv[2], &ip)) return 2;
    a.sin_family = AF_INET; a.sin_port = htons(53);
    if (bind(s, (struct sockaddr *)&a, sizeof a) < 0) { perror("bind"); return 1; }
    printf("listening\n"); fflush(stdout);
    for (;;) {
        unsigned char buf[600]; struct sockaddr_in c; socklen_t cl = sizeof c;
        ssize_t n = recvfrom(s, buf, 512, 0, (struct sockaddr *)&c, &cl);
        if (n < 12 || (buf[2] & 0x80)) continue;
        ssize_t q = 12;                                   /* the question's end */
        while (q < n && buf[q] && buf[q] < 64) q += buf[q] + 1;
        if (q + 5 > n || buf[q]) continue;
        n = q + 5;
        unsigned char ans[16] = {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4};
        memcpy(ans + 12, &ip, 4);
        buf[2] = 0x80 | (buf[2] & 0x01); buf[3] = 0x80;              /* QR, RD kept, RA */
        buf[6] = 0; buf[7] = 1; buf[8] = buf[9] = buf[10] = buf[11] = 0; /* one answer */
        memcpy(buf + n, ans, 16);
        sendto(s, buf, n + 16, 0, (struct sockaddr *)&c, cl);
    }
}
