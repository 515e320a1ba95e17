# The benchmark's chart: gnuplot -e "data='chart.dat'; out='chart.png'; subtitle='...'" bench/chart.gp
# chart.dat (freshet-bench run): a label per workload/guarantee, then for records/s, p99 ms, peak
# RSS MiB and CPU s, for Freshet, Kafka Streams and the raw pipe: median, min, max.
set terminal pngcairo size 1500,1000 font "sans,10"
set output out
set style data histograms
set style histogram errorbars gap 1 lw 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set grid ytics
set key above horizontal
set yrange [0:*]
set xtics rotate by -20
set multiplot layout 2,2 title "Freshet vs Java Kafka Streams vs a raw librdkafka pipe (median, min-max bars)\n".subtitle
col(m, c) = 2 + (m * 3 + c) * 3
array titles[4] = ["records/s (input fully processed; higher is better)", \
  "p99 end-to-end latency, ms, at a fixed input rate (lower is better)", \
  "peak RSS, MiB (lower is better)", "CPU seconds for the whole input (lower is better)"]
do for [m = 0:3] {
  set title titles[m + 1]
  plot data using col(m,0):col(m,0)+1:col(m,0)+2:xtic(1) title "Freshet" lc rgb "#1f77b4", \
       '' using col(m,1):col(m,1)+1:col(m,1)+2 title "Kafka Streams" lc rgb "#ff7f0e", \
       '' using col(m,2):col(m,2)+1:col(m,2)+2 title "raw pipe (stateless copy)" lc rgb "#7f7f7f"
}
unset multiplot
